"""The report's figures as PNG bytes: Kaplan-Meier curves of risk groups, attribution bars, C-index forest.

Matplotlib runs on the Agg backend (no display).  Every figure has a title and labelled axes; the KM
panels carry the numbers at risk under the curves (lifelines) and the log-rank p-value in the title.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from stylesurv.explain.result import AttributionSummary

RISK_GROUPS = {2: ["lower risk", "higher risk"], 3: ["low risk", "middle risk", "high risk"]}
_COLOURS = ["#2a9d8f", "#e9c46a", "#e76f51"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return buffer.getvalue()


def risk_groups(risk: np.ndarray, n_groups: int) -> np.ndarray:
    """Group 0..n_groups-1 of each patient by risk quantile (ties broken by order, so sizes are equal)."""
    order = np.argsort(np.argsort(np.asarray(risk, dtype=np.float64), kind="stable"), kind="stable")
    return (order * n_groups) // len(order)


def logrank_p(time: np.ndarray, event: np.ndarray, groups: np.ndarray) -> float:
    """Log-rank test p-value across the groups (lifelines' multivariate log-rank test)."""
    from lifelines.statistics import multivariate_logrank_test

    return float(multivariate_logrank_test(time, groups, event).p_value)


def km_figure(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, model: str
) -> tuple[bytes, dict[str, float]]:
    """Kaplan-Meier curves of out-of-fold risk groups (median split and tertiles), with numbers at risk.

    Returns the PNG and the log-rank p-value of each grouping ("median", "tertiles").
    """
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    plt = _pyplot()
    time, event = np.asarray(time, dtype=np.float64), np.asarray(event, dtype=np.int64)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))
    p_values = {}
    for ax, (key, n_groups) in zip(axes, (("median", 2), ("tertiles", 3)), strict=True):
        groups = risk_groups(risk, n_groups)
        fitters = []
        for g, label in enumerate(RISK_GROUPS[n_groups]):
            rows = groups == g
            kmf = KaplanMeierFitter(label=f"{label} (n={rows.sum()})")
            kmf.fit(time[rows], event[rows])
            kmf.plot_survival_function(ax=ax, ci_show=True, color=_COLOURS[g * 2 // max(n_groups - 1, 1)])
            fitters.append(kmf)
        p_values[key] = logrank_p(time, event, groups)
        split = "median split" if n_groups == 2 else "tertiles"
        ax.set_title(f"{model}: {split} of out-of-fold risk\nlog-rank p = {p_values[key]:.2g}")
        ax.set_xlabel("time (days)")
        ax.set_ylabel("survival probability")
        ax.set_ylim(0, 1.02)
        add_at_risk_counts(*fitters, ax=ax, fig=fig, rows_to_show=["At risk"])
    fig.tight_layout()
    return _png(fig), p_values


def margin_label(attribution: AttributionSummary) -> str:
    """The name of the face-with-margin region, e.g. "face + 2 px margin"."""
    margin = attribution.face_margin_px
    return f"face + {margin:g} px margin" if margin is not None else "face + margin"


def attribution_bars(attribution: AttributionSummary) -> list[tuple[str, float, float, float, float]]:
    """(label, health direction, random mean, random SD, share of pixels) per bar group of the figure.

    The mask regions in their order, with the face-with-margin region right after the strict face when the
    summary has it (older runs do not); a region missing from a mapping is NaN.
    """
    nan = float("nan")
    bars = []
    for region in attribution.regions:
        values = (attribution.health, attribution.random_mean, attribution.random_sd, attribution.area)
        bars.append((region, *(found.get(region, nan) for found in values)))
        wide = attribution.face_with_margin
        if region == "face" and wide is not None:
            bars.append((margin_label(attribution), wide.health, wide.random_mean, wide.random_sd, wide.area))
    return bars


def attribution_figure(attribution: AttributionSummary) -> bytes:
    """Bars of the share of image-change energy per region: health direction, random directions, area.

    The face with its contour margin stands next to the strict face; every bar carries its value.
    """
    plt = _pyplot()
    bars = attribution_bars(attribution)
    labels, health, rand, rand_sd, area = (list(column) for column in zip(*bars, strict=True))
    x = np.arange(len(bars))
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    drawn = [
        ax.bar(x - 0.27, health, 0.27, label="health direction", color="#e76f51"),
        ax.bar(
            x,
            rand,
            0.27,
            yerr=rand_sd,
            capsize=3,
            label=f"random directions (n={attribution.n_random})",
            color="#8d99ae",
        ),
        ax.bar(x + 0.27, area, 0.27, label="share of the image area", color="#d9d9d9"),
    ]
    for container, values in zip(drawn, (health, rand, area), strict=True):
        texts = [f"{v:.2f}" if np.isfinite(v) else "" for v in values]
        ax.bar_label(container, labels=texts, fontsize=7, padding=2)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("share of pixel-change energy")
    ax.set_xlabel("image region (from the face masks)")
    step, n = attribution.step_sd, attribution.n_patients
    ax.set_title(f"Where a {step:g}-SD step changes the image ({n} patients)")
    ax.legend(frameon=False, ncol=3, loc="upper center", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def cindex_figure(models: Sequence[tuple[str, float, float | None, float | None]]) -> bytes:
    """Forest plot of each model's C-index (name, estimate, CI low, CI high), with the 0.5 chance line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(models) + 1.6))
    for i, (_, c, low, high) in enumerate(models):
        if low is not None and high is not None:
            ax.plot([low, high], [i, i], color="#264653", lw=2)
        ax.plot([c], [i], "o", color="#e76f51")
    ax.axvline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax.set_yticks(range(len(models)), [m[0] for m in models])
    ax.invert_yaxis()
    ax.set_xlabel("Harrell's C-index (out-of-fold, 95 % CI)")
    ax.set_title("Discrimination of each model")
    ax.legend(frameon=False, loc="lower right")
    fig.tight_layout()
    return _png(fig)
