"""Discrimination and calibration metrics for survival predictions.

Harrell's C is computed here in vectorised form (pair matrices), which makes thousands of bootstrap or
permutation replicates cheap; it follows scikit-survival's ``concordance_index_censored`` exactly (an event at
time t is comparable with every patient whose time is later, and with patients censored at the same t; tied
risks count one half).  Uno's C, the time-dependent AUC and the integrated Brier score are scikit-survival's,
fed with outcomes truncated so that the inverse-probability-of-censoring weights never divide by zero.
"""

from __future__ import annotations

import numpy as np

TIED_TOL = 1e-8  # risks closer than this count as tied, as in scikit-survival


def comparable_pairs(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """[N, N] bool: entry (i, j) is a usable pair with i the earlier death (Harrell's definition)."""
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    later = time[None, :] > time[:, None]
    same_time_censored = (time[None, :] == time[:, None]) & ~event[None, :]
    return event[:, None] & (later | same_time_censored)


def concordance_scores(risk: np.ndarray) -> np.ndarray:
    """[N, N] float: 1 where risk_i > risk_j, 0.5 where tied, 0 otherwise."""
    risk = np.asarray(risk, dtype=np.float64)
    diff = risk[:, None] - risk[None, :]
    return np.where(np.abs(diff) <= TIED_TOL, 0.5, (diff > 0).astype(np.float64))


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance index of ``risk`` (higher = earlier death); nan if no pair is comparable."""
    pairs = comparable_pairs(time, event)
    n_pairs = pairs.sum()
    if n_pairs == 0:
        return float("nan")
    return float((concordance_scores(risk) * pairs).sum() / n_pairs)


def bootstrap_harrell_ci(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of Harrell's C, resampling patients with replacement.

    A resample with patient counts ``w`` has C = w'(A*K)w / w'Aw for the pair matrices A (comparable) and
    K (concordant), so all replicates are a few matrix products.
    """
    pairs = comparable_pairs(time, event).astype(np.float64)
    concordant = concordance_scores(risk) * pairs
    rng = np.random.default_rng(seed)
    n = len(time)
    stats = []
    for start in range(0, n_boot, 200):
        size = min(200, n_boot - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)  # [B, N]
        num = np.einsum("bi,bi->b", weights @ concordant, weights)
        den = np.einsum("bi,bi->b", weights @ pairs, weights)
        stats.append(num[den > 0] / den[den > 0])
    values = np.concatenate(stats)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))


def truncate_outcomes(y: np.ndarray, at: float) -> np.ndarray:
    """Outcomes administratively censored at time ``at`` (later times set to ``at``, event to False)."""
    out = y.copy()
    late = out["time"] > at
    out["time"][late] = at
    out["event"][late] = False
    return out


def fold_horizon(y_train: np.ndarray, y_test: np.ndarray, tau: float) -> float:
    """Largest time at which IPCW metrics are defined for this split, capped at ``tau``.

    Censoring weights come from the training fold's Kaplan-Meier estimate of censoring, which may reach 0 at
    its last time; metrics therefore stop strictly before the last training time and at the last test time.
    """
    last_train = np.nextafter(float(y_train["time"].max()), -np.inf)
    return float(min(tau, last_train, float(y_test["time"].max())))


def uno_c(y_train: np.ndarray, y_test: np.ndarray, risk: np.ndarray, tau: float) -> float:
    """Uno's IPCW concordance truncated at ``tau`` (scikit-survival's ``concordance_index_ipcw``); nan if no
    pair is comparable."""
    from sksurv.exceptions import NoComparablePairException
    from sksurv.metrics import concordance_index_ipcw

    horizon = fold_horizon(y_train, y_test, tau)
    y_eval = truncate_outcomes(y_test, horizon)
    if not y_eval["event"].any():
        return float("nan")
    try:
        return float(concordance_index_ipcw(y_train, y_eval, risk, tau=horizon)[0])
    except NoComparablePairException:
        return float("nan")


def usable_times(times: np.ndarray, y_train: np.ndarray, y_test: np.ndarray, tau: float) -> np.ndarray:
    """The evaluation ``times`` that lie inside this split's follow-up (>= first test time, < horizon)."""
    horizon = fold_horizon(y_train, y_test, tau)
    times = np.asarray(times, dtype=np.float64)
    return times[(times >= y_test["time"].min()) & (times < horizon)]


def td_auc(
    y_train: np.ndarray, y_test: np.ndarray, risk: np.ndarray, times: np.ndarray, tau: float
) -> np.ndarray:
    """Cumulative/dynamic AUC at each time (nan where a time is outside this split's follow-up)."""
    from sksurv.metrics import cumulative_dynamic_auc

    out = np.full(len(times), np.nan)
    ok = usable_times(times, y_train, y_test, tau)
    if len(ok) == 0:
        return out
    horizon = fold_horizon(y_train, y_test, tau)
    y_eval = truncate_outcomes(y_test, horizon)
    has_cases = np.array([((y_eval["time"] <= t) & y_eval["event"]).any() for t in ok])
    has_controls = np.array([(y_eval["time"] > t).any() for t in ok])
    ok = ok[has_cases & has_controls]
    if len(ok) == 0:
        return out
    auc, _ = cumulative_dynamic_auc(y_train, y_eval, risk, ok)
    out[np.isin(times, ok)] = auc
    return out


def integrated_brier(
    y_train: np.ndarray, y_test: np.ndarray, survival: np.ndarray, times: np.ndarray, tau: float
) -> float:
    """Integrated Brier score of survival curves ``survival`` [N, len(times)] over the usable ``times``."""
    from sksurv.metrics import integrated_brier_score

    keep = np.isin(times, usable_times(times, y_train, y_test, tau))
    if keep.sum() < 2:
        return float("nan")
    horizon = fold_horizon(y_train, y_test, tau)
    return float(
        integrated_brier_score(
            y_train, truncate_outcomes(y_test, horizon), survival[:, keep], np.asarray(times)[keep]
        )
    )


def default_times(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(AUC times, Brier grid, tau) from the whole cohort's observed event times.

    AUC at the 25th, 50th and 75th percentile of event times; the Brier grid spans the 10th-80th percentile
    in 20 steps; Uno's C is truncated at the 80th percentile.  These use outcomes only in aggregate, never a
    per-patient statistic, so they leak nothing into any fold's model.
    """
    event_times = np.asarray(time, dtype=np.float64)[np.asarray(event, dtype=bool)]
    auc_times = np.unique(np.quantile(event_times, [0.25, 0.5, 0.75]))
    grid = np.unique(np.quantile(event_times, np.linspace(0.1, 0.8, 20)))
    tau = float(np.quantile(event_times, 0.8))
    return auc_times, grid, tau
