"""Survival metrics against values that do not come from the code they test.

Three kinds of reference:

* closed forms worked out by hand on tiny data sets (the arithmetic is in the comments);
* numbers from R, computed outside the repository with R 4.2.2, survival 3.5.3, riskRegression 2022.11.28 and
  pec 2022.5.4 (Debian bookworm packages r-base-core, r-cran-survival, r-cran-riskregression, r-cran-pec);
  the R code that printed each number is quoted next to it;
* independent implementations of the same definition (lifelines and scikit-survival for Harrell's C, which
  ``harrell_c`` re-implements rather than wraps; scikit-learn's ROC AUC and a plain mean of squared errors for
  the uncensored special cases), plus invariances.

Uno's C, td-AUC and the IBS wrap scikit-survival, so they are never compared with scikit-survival here.
"""

import numpy as np
import pytest
from lifelines.utils import concordance_index as lifelines_concordance_index
from sklearn.metrics import roc_auc_score
from sksurv.linear_model.coxph import BreslowEstimator
from sksurv.metrics import concordance_index_censored

from stylesurv.survival.data import make_y
from stylesurv.survival.metrics import (
    bootstrap_harrell_ci,
    harrell_c,
    integrated_brier,
    td_auc,
    uno_c,
)
from stylesurv.survival.models import breslow_baseline

# ----------------------------------------------------------------------------------------------------------
# Hand-worked example with a separate training fold (the censoring distribution comes from TRAIN only).
#
# TRAIN (time, event): (1, 1) (2, 0) (3, 1) (4, 0) (5, 1) (6, 0).
# Kaplan-Meier of the censoring (censorings are the "events"; a death at a time leaves the censoring risk set
# before any censoring at that time, here there are no such ties):
#   t = 2: 5 at risk, 1 censored -> G = 4/5 = 0.8
#   t = 4: 3 at risk, 1 censored -> G = 0.8 * 2/3 = 8/15
#   t = 6: 1 at risk, 1 censored -> G = 0   (so every IPCW metric must stop before t = 6)
#   G(t) = 1 on [0, 2), 0.8 on [2, 4), 8/15 on [4, 6).
#
# TEST patients A..E (time, event, risk):
#   A (1.5, 1, 0.35)  B (2.5, 1, 0.90)  C (3.5, 0, 0.30)  D (4.5, 1, 0.40)  E (5.5, 0, 0.40)
# G at the test event times: G(1.5) = 1, G(2.5) = 0.8, G(4.5) = 8/15.
TRAIN = make_y(np.array([1.0, 2, 3, 4, 5, 6]), np.array([1, 0, 1, 0, 1, 0], bool))
TEST = make_y(np.array([1.5, 2.5, 3.5, 4.5, 5.5]), np.array([1, 1, 0, 1, 0], bool))
RISK = np.array([0.35, 0.90, 0.30, 0.40, 0.40])


def test_harrell_c_by_hand_with_tied_times_and_risks() -> None:
    # (time, event, risk): a (1,1,.9) b (2,1,.5) c (2,0,.5) d (3,1,.7) e (3,1,.2) f (4,0,.1)
    # Comparable pairs (earlier time is a death; a censoring at the same time counts as later; two deaths at
    # the same time do not count), 1 = concordant (the earlier death has the higher risk), 1/2 = tied risk:
    #   a vs b c d e f: .9 beats all five                      -> 5 pairs, 5
    #   b vs c (censored at the same time, tied risk) d e f:   -> 4 pairs, 1/2 + 0 + 1 + 1 = 2.5
    #   d vs f: .7 > .1 (d vs e: deaths at the same time)      -> 1 pair, 1
    #   e vs f: .2 > .1                                        -> 1 pair, 1
    # C = (5 + 2.5 + 1 + 1) / (5 + 4 + 1 + 1) = 9.5 / 11
    time = np.array([1.0, 2, 2, 3, 3, 4])
    event = np.array([1, 1, 0, 1, 1, 0], bool)
    risk = np.array([0.9, 0.5, 0.5, 0.7, 0.2, 0.1])
    assert harrell_c(time, event, risk) == pytest.approx(9.5 / 11, abs=1e-12)


def test_uno_c_by_hand() -> None:
    # Weights 1/G(T_i)^2 of the test deaths: A 1, B 1/0.64 = 1.5625, D (15/8)^2 = 3.515625.
    # tau = 5: E is truncated to (5, censored); deaths before tau: A, B, D.
    #   A vs B C D E: .35 < .9, > .3, < .4, < .4   -> 4 pairs, 1 concordant
    #   B vs C D E:   .9 beats all                 -> 3 pairs, 3
    #   D vs E:       .4 = .4 (tie)                -> 1 pair, 1/2
    # C_tau=5 = (1*1 + 1.5625*3 + 3.515625*0.5) / (1*4 + 1.5625*3 + 3.515625*1) = 7.4453125 / 12.203125
    assert uno_c(TRAIN, TEST, RISK, tau=5.0) == pytest.approx(7.4453125 / 12.203125, abs=1e-12)
    # tau = 4: D's death is past tau; only A and B count: (1*1 + 1.5625*3) / (1*4 + 1.5625*3)
    assert uno_c(TRAIN, TEST, RISK, tau=4.0) == pytest.approx(5.6875 / 8.6875, abs=1e-12)
    # Same pairs without weights (Harrell, no truncation): (1 + 3 + 0.5) / 8 -- the weights matter here.
    assert harrell_c(TEST["time"], TEST["event"], RISK) == pytest.approx(4.5 / 8, abs=1e-12)


def test_td_auc_by_hand() -> None:
    # Cumulative/dynamic AUC(t): cases = deaths with T <= t, weighted 1/G(T_i) (A 1, B 1.25, D 15/8);
    # controls = T > t, unweighted (their common weight 1/G(t) cancels); tied risk counts 1/2.
    #   t = 1   : before the first test time -> nan
    #   t = 2   : cases A; controls B C D E; A beats only C                      -> 1/4
    #   t = 3   : cases A, B; controls C D E; A beats C (1), B beats all (3)
    #             -> (1*1 + 1.25*3) / ((1 + 1.25) * 3) = 4.75 / 6.75
    #   t = 4.75: cases A, B, D; control E (truncated at tau=5, still > 4.75);
    #             A < E (0), B > E (1), D = E (1/2)
    #             -> (0 + 1.25 + 1.875/2) / (1 + 1.25 + 1.875) = 2.1875 / 4.125
    times = np.array([1.0, 2.0, 3.0, 4.75])
    expected = [np.nan, 0.25, 4.75 / 6.75, 2.1875 / 4.125]
    np.testing.assert_allclose(td_auc(TRAIN, TEST, RISK, times, tau=5.0), expected, atol=1e-12)


def test_integrated_brier_by_hand() -> None:
    # Brier(t) = 1/n sum_i [ 1{T_i <= t, death} S_i(t)^2 / G(T_i) + 1{T_i > t} (1 - S_i(t))^2 / G(t) ],
    # n = 5 (patients censored before t contribute 0).  Survival predictions at t = 1.75, 3, 4.75 (the column
    # at t = 1, before the first test time, must be ignored):
    #   A .6 .4 .2   B .8 .5 .3   C .9 .8 .6   D .9 .7 .5   E 1 .9 .8
    # t = 1.75 (G = 1): A dead .6^2 = .36; alive B C D E: .2^2 + .1^2 + .1^2 + 0 = .06   -> .42 / 5 = .084
    # t = 3 (G(3) = .8): A .4^2/1 = .16, B .5^2/.8 = .3125; alive C D E (.04 + .09 + .01)/.8 = .175
    #                                                                                   -> .6475 / 5 = .1295
    # t = 4.75 (G = 8/15): A .04, B .09/.8 = .1125, D .25*15/8 = .46875; C censored at 3.5: 0;
    #                      alive E .2^2 * 15/8 = .075                                   -> .69625 / 5 = .13925
    # IBS = trapezoid / (4.75 - 1.75) = [(.084 + .1295)/2 * 1.25 + (.1295 + .13925)/2 * 1.75] / 3
    #     = (.1334375 + .23515625) / 3 = .36859375 / 3
    times = np.array([1.0, 1.75, 3.0, 4.75])
    survival = np.array(
        [
            [0.5, 0.6, 0.4, 0.2],
            [0.5, 0.8, 0.5, 0.3],
            [0.5, 0.9, 0.8, 0.6],
            [0.5, 0.9, 0.7, 0.5],
            [0.5, 1.0, 0.9, 0.8],
        ]
    )
    assert integrated_brier(TRAIN, TEST, survival, times, tau=5.0) == pytest.approx(0.36859375 / 3, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# A 20-patient data set evaluated in R.  The IPCW metrics there estimate the censoring distribution from the
# evaluated data, so these tests pass the same outcomes as train and test.  In R:
#
#   library(survival); library(riskRegression); library(pec); options(digits = 15)
#   time   <- c(1.95, 1.83, 1.88, 0.06, 0.08, 1.55, 0.06, 2.83, 0.47, 0.02,
#               2.71, 0.01, 3, 0.38, 0.5, 2.02, 2.83, 3.3, 1.62, 0.63)
#   status <- c(1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0)
#   risk   <- c(-0.8, -1.32, -0.25, 0.42, 1.14, 0.11, -0.55, -0.78, 0.75, 1.63,
#               0.27, -1.23, -0.96, 1.6, 0.27, -1.73, -0.08, -1.16, -0.63, -0.49)
#   d  <- data.frame(time, status, risk)
#   d2 <- d; d2$time[7] <- 0.07; d2$time[8] <- 2.84     # "tie-free": no censoring at a death time
#
# d has a death and a censoring both at 0.06 and at 2.83, and tied risks (0.27) in a comparable pair.
R_TIME = np.array(
    [1.95, 1.83, 1.88, 0.06, 0.08, 1.55, 0.06, 2.83, 0.47, 0.02,
     2.71, 0.01, 3, 0.38, 0.5, 2.02, 2.83, 3.3, 1.62, 0.63]
)  # fmt: skip
R_EVENT = np.array([1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0], bool)
R_RISK = np.array(
    [-0.8, -1.32, -0.25, 0.42, 1.14, 0.11, -0.55, -0.78, 0.75, 1.63,
     0.27, -1.23, -0.96, 1.6, 0.27, -1.73, -0.08, -1.16, -0.63, -0.49]
)  # fmt: skip
R_TIME_TIE_FREE = R_TIME.copy()
R_TIME_TIE_FREE[6], R_TIME_TIE_FREE[7] = 0.07, 2.84  # R's 1-based d2$time[7], d2$time[8]


def test_harrell_c_equals_r_survival_concordance() -> None:
    # concordance(Surv(time, status) ~ risk, data = d, reverse = TRUE)
    #   -> 0.775590551181102 (concordant 98, discordant 28, tied.x 1, tied.y 0: R also compares the death at
    #      0.06 with the censoring at 0.06, and counts the tied risk one half)
    assert harrell_c(R_TIME, R_EVENT, R_RISK) == pytest.approx(0.775590551181102, abs=1e-12)


def test_uno_c_equals_r_survival_concordance_n_over_g2() -> None:
    # concordance(Surv(time, status) ~ risk, data = d2, reverse = TRUE, timewt = "n/G2", ymax = 2.5)
    #   -> 0.75768697516743
    y = make_y(R_TIME_TIE_FREE, R_EVENT)
    assert uno_c(y, y, R_RISK, tau=2.5) == pytest.approx(0.75768697516743, abs=1e-12)


def test_uno_c_with_a_censoring_at_a_death_time_differs_from_r_only_by_the_left_limit() -> None:
    # concordance(Surv(time, status) ~ risk, data = d, reverse = TRUE, timewt = "n/G2", ymax = 2.5)
    #   -> 0.75768697516743 (the same as for d2: R weights a death at t by G(t-), the censoring survival just
    #      before t, so the censoring at 0.06 does not touch the death at 0.06).
    # scikit-survival (hence uno_c) uses the right-continuous G(t), which already includes that censoring:
    # the death at 0.06 (patient 4, 18 at risk, one of whom dies at 0.06, so 17 in the censoring risk set)
    # gets 1/G^2 = (17/16)^2 instead of 1.  That definitional difference moves C by +9.6e-4 here; the death at
    # 2.83 is past tau and does not matter.
    y = make_y(R_TIME, R_EVENT)
    ours = uno_c(y, y, R_RISK, tau=2.5)
    assert ours == pytest.approx(0.75768697516743, abs=1.5e-3)
    assert ours - 0.75768697516743 > 5e-4  # the documented right-limit convention, not an accident


def test_td_auc_equals_r_riskregression_score() -> None:
    # for (tt in c(0.4, 1.0, 1.9))
    #   Score(list(m = matrix(risk, ncol = 1)), formula = Hist(time, status) ~ 1, data = d2, times = tt,
    #         metrics = "auc", cens.model = "km", null.model = FALSE, conf.int = FALSE)$AUC$score$AUC
    #   -> 0.818815331010453, 0.861196319018405, 0.831863638953786
    # (riskRegression weights cases by 1/G(T_i-), scikit-survival by 1/G(T_i); equal here since d2 has no
    # censoring at a death time.)
    y = make_y(R_TIME_TIE_FREE, R_EVENT)
    expected = [0.818815331010453, 0.861196319018405, 0.831863638953786]
    np.testing.assert_allclose(td_auc(y, y, R_RISK, np.array([0.4, 1.0, 1.9]), tau=2.5), expected, atol=1e-12)


def test_integrated_brier_equals_trapezoid_of_r_pec_brier_scores() -> None:
    # grid <- c(0.25, 0.75, 1.25, 1.75, 2.25)
    # S <- outer(exp(risk), grid, function(h, t) exp(-0.5 * t * h))   # survival predictions [20, 5]
    # pec(object = list(m = S), formula = Surv(time, status) ~ 1, data = d2, times = grid, exact = FALSE,
    #     cens.model = "marginal", reference = FALSE)$AppErr$m
    #   -> 0.138636197320167 0.118880944146797 0.130638472988173 0.162413241983361 0.217022667637747
    # riskRegression::Score(list(m = 1 - S), Hist(time, status) ~ 1, data = d2, times = grid,
    #     metrics = "brier", cens.model = "km", null.model = FALSE, conf.int = FALSE)$Brier$score$Brier
    #   prints the same five numbers.
    # The integrated score is their trapezoid integral divided by the grid's span (scikit-survival's and this
    # project's definition; pec's own crps() integrates a step function instead, so it is not used).
    grid = np.array([0.25, 0.75, 1.25, 1.75, 2.25])
    survival = np.exp(-0.5 * grid[None, :] * np.exp(R_RISK)[:, None])
    brier_r = np.array(
        [0.138636197320167, 0.118880944146797, 0.130638472988173, 0.162413241983361, 0.217022667637747]
    )
    expected = float(np.sum((brier_r[1:] + brier_r[:-1]) / 2 * np.diff(grid)) / (grid[-1] - grid[0]))
    y = make_y(R_TIME_TIE_FREE, R_EVENT)
    assert integrated_brier(y, y, survival, grid, tau=2.5) == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Independent implementations and uncensored special cases.


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_harrell_c_equals_lifelines_and_sksurv_with_tied_times_and_risks(seed: int) -> None:
    # harrell_c is a vectorised re-implementation (it does not call either library).
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 30, size=120).astype(float)  # many tied times
    event = rng.uniform(size=120) < 0.6
    risk = np.round(rng.normal(size=120) - 0.03 * time, 1)  # tied risks too
    ours = harrell_c(time, event, risk)
    # lifelines scores are "higher = longer survival", hence -risk
    assert ours == pytest.approx(lifelines_concordance_index(time, -risk, event), abs=1e-12)
    assert ours == pytest.approx(concordance_index_censored(event, time, risk)[0], abs=1e-12)


def _uncensored(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = make_y(rng.exponential(np.exp(-x)), np.ones(n, bool))
    return y, x


def test_uno_c_without_censoring_is_harrell_c_of_the_truncated_outcomes() -> None:
    # No censoring in the training fold -> G = 1 and every weight is 1, so Uno's C at tau is Harrell's C of
    # the outcomes censored at tau (pairs whose earlier death is before tau).
    y_train, _ = _uncensored(0)
    y_test, risk = _uncensored(1)
    tau = float(np.quantile(y_test["time"], 0.6))
    time = np.minimum(y_test["time"], tau)
    event = y_test["time"] < tau
    assert uno_c(y_train, y_test, risk, tau) == pytest.approx(harrell_c(time, event, risk), abs=1e-12)


def test_td_auc_and_ibs_without_censoring_are_roc_auc_and_mean_squared_error() -> None:
    # No censoring anywhere -> all IPCW weights are 1: AUC(t) is the ROC AUC of "died by t" (scikit-learn),
    # and Brier(t) is the mean of (1{T > t} - S(t))^2, integrated by the trapezoid rule over the grid's span.
    y_train, _ = _uncensored(2)
    y_test, risk = _uncensored(3)
    times = np.quantile(y_test["time"], [0.2, 0.4, 0.6])
    tau = float(np.quantile(y_test["time"], 0.9))
    expected_auc = [roc_auc_score(y_test["time"] <= t, risk) for t in times]
    np.testing.assert_allclose(td_auc(y_train, y_test, risk, times, tau), expected_auc, atol=1e-12)
    survival = np.exp(-times[None, :] * np.exp(risk)[:, None])
    brier = ((y_test["time"][:, None] > times[None, :]) - survival) ** 2
    mean_brier = brier.mean(axis=0)
    expected_ibs = np.sum((mean_brier[1:] + mean_brier[:-1]) / 2 * np.diff(times)) / (times[-1] - times[0])
    assert integrated_brier(y_train, y_test, survival, times, tau) == pytest.approx(expected_ibs, abs=1e-12)


def test_rank_metrics_are_invariant_to_monotone_transforms_of_risk() -> None:
    y = make_y(R_TIME_TIE_FREE, R_EVENT)
    transformed = np.exp(3 * R_RISK) + 7  # strictly increasing; keeps the one tie a tie
    times = np.array([0.4, 1.0, 1.9])
    c = harrell_c(R_TIME, R_EVENT, R_RISK)
    assert harrell_c(R_TIME, R_EVENT, transformed) == pytest.approx(c, abs=1e-12)
    assert uno_c(y, y, transformed, 2.5) == pytest.approx(uno_c(y, y, R_RISK, 2.5), abs=1e-12)
    auc = td_auc(y, y, R_RISK, times, 2.5)
    np.testing.assert_allclose(td_auc(y, y, transformed, times, 2.5), auc, atol=1e-12)
    # and reversing the risk ranks reflects C around 1/2 (the tied pair stays at 1/2)
    assert harrell_c(R_TIME, R_EVENT, -R_RISK) == pytest.approx(1 - c, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Edge cases and the bootstrap.


def _split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=300)
    t = rng.exponential(np.exp(-x))
    c = rng.exponential(1.5, size=300)
    y = make_y(np.minimum(t, c), t <= c)
    return y[:200], y[200:], x[200:]


def test_td_auc_is_nan_outside_the_follow_up() -> None:
    y_train, y_test, risk = _split(5)
    late = float(y_train["time"].max()) * 2
    assert np.isnan(td_auc(y_train, y_test, risk, np.array([late]), tau=late))[0]


def test_uno_c_is_nan_without_comparable_pairs() -> None:
    y_train, y_test, risk = _split(8)
    y_test = y_test.copy()
    y_test["event"] = False
    assert np.isnan(uno_c(y_train, y_test, risk, tau=float(np.median(y_test["time"]))))


def test_breslow_baseline_equals_sksurv() -> None:
    # breslow_baseline is this project's own implementation; scikit-survival's BreslowEstimator is
    # independent of it.
    y_train, _, _ = _split(6)
    risk = np.random.default_rng(0).normal(size=len(y_train))
    times, cumhaz = breslow_baseline(risk, y_train["time"], y_train["event"])
    reference = BreslowEstimator().fit(risk, y_train["event"], y_train["time"])
    np.testing.assert_allclose(cumhaz, reference.cum_baseline_hazard_(times), rtol=1e-10)


def test_bootstrap_ci_brackets_the_estimate_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(7)
    widths = []
    for n in (100, 800):
        x = rng.normal(size=n)
        t = rng.exponential(np.exp(-x))
        event = np.ones(n, bool)
        lo, hi = bootstrap_harrell_ci(t, event, x, n_boot=400, seed=0)
        assert lo < harrell_c(t, event, x) < hi
        widths.append(hi - lo)
    # the SE of C shrinks like 1/sqrt(n): 8x the patients, about 1/2.8 the width
    assert widths[1] / widths[0] == pytest.approx(1 / np.sqrt(8), rel=0.35)
