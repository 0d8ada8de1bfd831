"""Metrics against scikit-survival's own functions on the same predictions."""

import numpy as np
import pytest
from sksurv.linear_model.coxph import BreslowEstimator
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)

from stylesurv.survival.data import make_y
from stylesurv.survival.metrics import (
    bootstrap_harrell_ci,
    harrell_c,
    integrated_brier,
    td_auc,
    uno_c,
)
from stylesurv.survival.models import breslow_baseline, cox_survival


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_harrell_c_equals_sksurv_with_tied_times_and_risks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 30, size=120).astype(float)  # many tied times
    event = rng.uniform(size=120) < 0.6
    risk = np.round(rng.normal(size=120) - 0.03 * time, 1)  # tied risks too
    expected = concordance_index_censored(event, time, risk)[0]
    assert harrell_c(time, event, risk) == pytest.approx(expected, abs=1e-12)


def _split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=300)
    t = rng.exponential(np.exp(-x))
    c = rng.exponential(1.5, size=300)
    y = make_y(np.minimum(t, c), t <= c)
    return y[:200], y[200:], x[200:]


def test_uno_c_equals_sksurv_inside_follow_up() -> None:
    y_train, y_test, risk = _split(3)
    tau = float(np.quantile(y_test["time"][y_test["event"]], 0.7))
    expected = concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0]
    assert uno_c(y_train, y_test, risk, tau) == pytest.approx(expected, abs=1e-12)


def test_td_auc_and_ibs_equal_sksurv() -> None:
    y_train, y_test, risk = _split(4)
    times = np.quantile(y_test["time"][y_test["event"]], [0.2, 0.4, 0.6])
    tau = float(np.quantile(y_test["time"], 0.9))
    expected_auc, _ = cumulative_dynamic_auc(y_train, y_test, risk, times)
    np.testing.assert_allclose(td_auc(y_train, y_test, risk, times, tau), expected_auc, atol=1e-12)
    base_t, base_h = breslow_baseline(risk, y_test["time"], y_test["event"])
    survival = cox_survival(risk, base_t, base_h, times)
    expected_ibs = integrated_brier_score(y_train, y_test, survival, times)
    assert integrated_brier(y_train, y_test, survival, times, tau) == pytest.approx(expected_ibs, abs=1e-12)


def test_td_auc_is_nan_outside_the_follow_up() -> None:
    y_train, y_test, risk = _split(5)
    late = float(y_train["time"].max()) * 2
    assert np.isnan(td_auc(y_train, y_test, risk, np.array([late]), tau=late))[0]


def test_breslow_baseline_equals_sksurv() -> None:
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


def test_uno_c_is_nan_without_comparable_pairs() -> None:
    y_train, y_test, risk = _split(8)
    y_test = y_test.copy()
    y_test["event"] = False
    assert np.isnan(uno_c(y_train, y_test, risk, tau=float(np.median(y_test["time"]))))
