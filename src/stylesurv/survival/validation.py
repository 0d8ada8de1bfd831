"""Nested cross-validation: repeated stratified outer K-fold, everything learned inside each training fold.

For every outer fold the feature pipeline (standardisation, PCA, imputation, one-hot levels) is fitted on the
training patients only, the model tunes its hyperparameters by its own inner CV on those patients, and only
then are the held-out patients scored.  Per fold: Harrell's C, Uno's C (truncated at tau), the time-dependent
AUC at chosen times and the integrated Brier score.  Over folds: mean and SD.  On the pooled out-of-fold
risks: Harrell's C with a bootstrap 95 % CI, and optionally a permutation test that reruns the whole CV with
shuffled outcomes (the honest null: any leak would inflate the null too).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stylesurv.core.console import make_progress
from stylesurv.survival.data import FeaturePipeline, FeatureSpec, SurvivalData, stratified_splits
from stylesurv.survival.metrics import (
    bootstrap_harrell_ci,
    default_times,
    harrell_c,
    integrated_brier,
    td_auc,
    uno_c,
)
from stylesurv.survival.models import SurvivalModel

MakeModel = Callable[[int, int, list[str]], SurvivalModel]  # (seed, n_image_features, feature names) -> model
OOF_COLUMNS = ("patient_id", "time", "event", "repeat", "fold", "risk")  # CVResults.oof, oof_risk.csv
FOLD_KEYS = ("repeat", "fold", "n_test", "events_test")  # leading columns of CVResults.folds


def metric_names(auc_times: list[float]) -> list[str]:
    """The per-fold metrics, in order: Harrell's C, Uno's C, the AUC at each time, the integrated Brier."""
    return ["harrell_c", "uno_c", *[f"auc@{t:g}" for t in auc_times], "ibs"]


def _plain(value: Any) -> Any:
    """A table cell as JSON: Python scalars, floats at full precision, NaN and infinities as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as JSON records that read back to the same floats (pandas' to_json keeps 10 digits)."""
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _finite_or_none(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


@dataclass(eq=False)
class CVResults:
    """Everything a nested CV measured; renders itself as a summary table, JSON and a rich table.

    ``to_dict`` / ``to_json`` give what a bundle's cv_results.json holds (all but ``oof``, which is its
    oof_risk.csv); :meth:`from_json` reads it back and :func:`load_cv_results` reads both files of a
    bundle.  Two results are equal when their JSON and their out-of-fold tables are.
    """

    model: str
    spec: dict[str, Any]
    folds: pd.DataFrame  # one row per (repeat, fold): metrics and chosen hyperparameters
    oof: pd.DataFrame  # one row per (patient, repeat): patient_id, time, event, repeat, fold, risk
    auc_times: list[float]
    tau: float
    oof_harrell: float  # Harrell's C of the repeat-averaged out-of-fold risk ranks
    oof_ci: tuple[float, float]  # its bootstrap 95 % CI
    permutation: dict[str, Any] = field(default_factory=dict)  # n, null mean/sd, p (empty if not run)
    n_patients: int = 0
    n_events: int = 0

    @property
    def metric_columns(self) -> list[str]:
        return metric_names(self.auc_times)

    @property
    def summary(self) -> pd.DataFrame:
        """Mean and SD over folds of each metric (rows), plus the pooled out-of-fold C with its CI."""
        rows = []
        for col in self.metric_columns:
            values = self.folds[col].to_numpy(dtype=np.float64)
            finite = values[np.isfinite(values)]
            rows.append({
                "metric": col, "mean": finite.mean() if len(finite) else np.nan,
                "sd": finite.std(ddof=1) if len(finite) > 1 else np.nan,
                "ci_low": np.nan, "ci_high": np.nan, "n_folds": len(finite),
            })  # fmt: skip
        rows.append({
            "metric": "oof_harrell_c", "mean": self.oof_harrell, "sd": np.nan,
            "ci_low": self.oof_ci[0], "ci_high": self.oof_ci[1], "n_folds": len(self.folds),
        })  # fmt: skip
        return pd.DataFrame(rows).set_index("metric")

    def mean(self, metric: str) -> float:
        return float(self.summary.loc[metric, "mean"])

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary.reset_index()
        return {
            "model": self.model,
            "features": self.spec,
            "n_patients": self.n_patients,
            "n_events": self.n_events,
            "auc_times": self.auc_times,
            "tau": self.tau,
            "summary": _records(summary),
            "folds": _records(self.folds),
            "oof_harrell_c": self.oof_harrell,
            "oof_harrell_ci95": list(self.oof_ci),
            "permutation": self.permutation,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, doc: dict[str, Any] | str, oof: pd.DataFrame | None = None) -> CVResults:
        """The results that :meth:`to_dict` (or :meth:`to_json`, as text) wrote; the inverse of both.

        cv_results.json does not hold the out-of-fold risks: pass them as ``oof`` (oof_risk.csv's table;
        :func:`load_cv_results` reads it), else ``oof`` is an empty table.  The summary is recomputed from
        the folds, so it always agrees with them.
        """
        if isinstance(doc, str):
            doc = json.loads(doc)
        auc_times = [float(t) for t in doc["auc_times"]]
        folds = pd.DataFrame.from_records(doc["folds"])
        if len(folds.columns):
            metrics = metric_names(auc_times)
            lead = [c for c in (*FOLD_KEYS, *metrics) if c in folds.columns]
            folds = folds[lead + sorted(c for c in folds.columns if c not in lead)]
            for col in metrics:
                if col in folds.columns:
                    folds[col] = folds[col].astype(np.float64)  # null (a NaN metric) back to NaN
        low, high = doc["oof_harrell_ci95"]
        return cls(
            model=doc["model"],
            spec=dict(doc.get("features", {})),
            folds=folds,
            oof=pd.DataFrame(columns=list(OOF_COLUMNS)) if oof is None else oof,
            auc_times=auc_times,
            tau=float(doc["tau"]),
            oof_harrell=float(doc["oof_harrell_c"]),
            oof_ci=(float(low), float(high)),
            permutation=dict(doc.get("permutation") or {}),
            n_patients=int(doc.get("n_patients", 0)),
            n_events=int(doc.get("n_events", 0)),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CVResults):
            return NotImplemented
        return self.to_json() == other.to_json() and self.oof.reset_index(drop=True).equals(
            other.oof.reset_index(drop=True)
        )

    def headline(self) -> dict[str, Any]:
        """The headline numbers: fold-mean Harrell's and Uno's C and integrated Brier score, the pooled
        out-of-fold Harrell's C with its bootstrap 95 % CI, and the permutation p-value (None when the test
        was not run).  Plain floats, None for what is missing or not finite, so the dict is JSON."""
        means = self.summary["mean"]
        return {
            "harrell_c": _finite_or_none(means.get("harrell_c")),
            "uno_c": _finite_or_none(means.get("uno_c")),
            "ibs": _finite_or_none(means.get("ibs")),
            "oof_harrell_c": _finite_or_none(self.oof_harrell),
            "oof_harrell_ci95": [_finite_or_none(v) for v in self.oof_ci],
            "permutation_p": _finite_or_none(self.permutation.get("p_value")),
        }

    def table(self) -> Any:
        """A rich Table of the summary (print it with ``stylesurv.console.console.print``)."""
        from rich.table import Table

        title = f"{self.model}: {self.n_patients} patients, {self.n_events} events, {len(self.folds)} folds"
        table = Table(title=title)
        for name in ("metric", "mean", "SD", "95% CI"):
            table.add_column(name, justify="left" if name == "metric" else "right")
        for metric, row in self.summary.iterrows():
            ci = f"{row['ci_low']:.3f}-{row['ci_high']:.3f}" if np.isfinite(row["ci_low"]) else ""
            sd = f"{row['sd']:.3f}" if np.isfinite(row["sd"]) else ""
            mean = f"{row['mean']:.3f}" if np.isfinite(row["mean"]) else "n/a (undefined on these folds)"
            table.add_row(str(metric), mean, sd, ci)
        if self.permutation:
            p = self.permutation
            table.add_row(
                "permutation p", f"{p['p_value']:.3f}", "", f"null {p['null_mean']:.3f}±{p['null_sd']:.3f}"
            )
        return table


def _fold_models(
    data: SurvivalData, spec: FeatureSpec, make_model: MakeModel, train: np.ndarray, seed: int
) -> tuple[FeaturePipeline, SurvivalModel]:
    """Fit the feature pipeline and the model on the patients ``train``."""
    train_data = data.subset(train)
    pipe = FeaturePipeline(spec).fit(train_data)
    model = make_model(seed, pipe.n_latent_features, pipe.feature_names)
    model.fit(pipe.transform(train_data), train_data.y)
    return pipe, model


def fit_all(
    data: SurvivalData, spec: FeatureSpec, make_model: MakeModel, seed: int
) -> tuple[FeaturePipeline, SurvivalModel]:
    """Pipeline and model fitted on every patient (the model a bundle ships)."""
    return _fold_models(data, spec, make_model, np.arange(len(data)), seed)


def _outer_cv(
    data: SurvivalData,
    spec: FeatureSpec,
    make_model: MakeModel,
    folds: int,
    repeats: int,
    seed: int,
    auc_times: np.ndarray,
    grid: np.ndarray,
    tau: float,
    with_metrics: bool,
    on_fold: Callable[[], None] = lambda: None,
) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    fold_rows: list[dict[str, Any]] = []
    oof_parts: list[pd.DataFrame] = []
    y = data.y
    for r in range(repeats):
        for k, (tr, te) in enumerate(stratified_splits(data.event, folds, seed + r)):
            fold_seed = seed * 1_000 + r * 100 + k
            pipe, model = _fold_models(data, spec, make_model, tr, fold_seed)
            X_te = pipe.transform(data.subset(te))
            risk = model.predict(X_te)
            oof_parts.append(pd.DataFrame({"row": te, "repeat": r, "fold": k, "risk": risk}))
            if with_metrics:
                row: dict[str, Any] = {
                    "repeat": r,
                    "fold": k,
                    "n_test": len(te),
                    "events_test": int(y["event"][te].sum()),
                }
                row["harrell_c"] = harrell_c(y["time"][te], y["event"][te], risk)
                row["uno_c"] = uno_c(y[tr], y[te], risk, tau)
                for t, auc in zip(auc_times, td_auc(y[tr], y[te], risk, auc_times, tau), strict=True):
                    row[f"auc@{t:g}"] = auc
                survival = model.predict_survival_function(X_te, grid)
                row["ibs"] = integrated_brier(y[tr], y[te], survival, grid, tau)
                row["params"] = json.dumps(model.params_, sort_keys=True, default=float)
                fold_rows.append(row)
            on_fold()
    return fold_rows, oof_parts


def _pooled_risk(oof: pd.DataFrame, n: int) -> np.ndarray:
    """Each patient's out-of-fold risk, as the mean over repeats of its within-repeat rank in [0, 1]."""
    ranks = np.zeros(n)
    repeats = oof["repeat"].unique()
    for r in repeats:
        part = oof[oof["repeat"] == r]
        ranks[part["row"].to_numpy()] += part["risk"].rank(pct=True).to_numpy()
    return ranks / len(repeats)


def cross_validate(
    data: SurvivalData,
    spec: FeatureSpec,
    make_model: MakeModel,
    model_name: str,
    folds: int = 5,
    repeats: int = 1,
    seed: int = 0,
    auc_times: np.ndarray | None = None,
    tau: float | None = None,
    n_bootstrap: int = 1000,
    n_permutations: int = 0,
    progress: bool = True,
) -> CVResults:
    """Nested CV of ``make_model`` on ``data`` with features ``spec``; see the module docstring."""
    default_auc, grid, default_tau = default_times(data.time, data.event)
    auc_times = default_auc if auc_times is None else np.asarray(auc_times, dtype=np.float64)
    tau = default_tau if tau is None else float(tau)
    n_folds = len(stratified_splits(data.event, folds, seed))
    with make_progress() as bar:
        task = bar.add_task(f"CV {model_name}", total=n_folds * repeats, visible=progress)
        fold_rows, oof_parts = _outer_cv(
            data,
            spec,
            make_model,
            folds,
            repeats,
            seed,
            auc_times,
            grid,
            tau,
            True,
            lambda: bar.advance(task),
        )
    oof = pd.concat(oof_parts, ignore_index=True)
    pooled = _pooled_risk(oof, len(data))
    oof_c = harrell_c(data.time, data.event, pooled)
    ci = bootstrap_harrell_ci(data.time, data.event, pooled, n_boot=n_bootstrap, seed=seed)
    rows = oof["row"].to_numpy()
    oof_table = pd.DataFrame({
        "patient_id": data.patient_id[rows], "time": data.time[rows], "event": data.event[rows].astype(int),
        "repeat": oof["repeat"], "fold": oof["fold"], "risk": oof["risk"],
    }).sort_values(["repeat", "patient_id"], ignore_index=True)  # fmt: skip
    results = CVResults(
        model=model_name,
        spec=spec.to_dict(),
        folds=pd.DataFrame(fold_rows),
        oof=oof_table,
        auc_times=[float(t) for t in auc_times],
        tau=tau,
        oof_harrell=oof_c,
        oof_ci=ci,
        n_patients=len(data),
        n_events=int(data.event.sum()),
    )
    if n_permutations > 0:
        null = permutation_null(data, spec, make_model, folds, seed, n_permutations, progress)
        results.permutation = {
            "n": n_permutations,
            "observed": _single_repeat_c(oof, data),
            "null_mean": float(np.mean(null)),
            "null_sd": float(np.std(null, ddof=1)) if len(null) > 1 else 0.0,
            "p_value": float((1 + np.sum(null >= _single_repeat_c(oof, data))) / (1 + len(null))),
            "null": [float(v) for v in null],
        }
    return results


def _single_repeat_c(oof: pd.DataFrame, data: SurvivalData) -> float:
    """Harrell's C of the first repeat's pooled out-of-fold risks (what a permutation replicate computes)."""
    first = oof[oof["repeat"] == 0]
    rows = first["row"].to_numpy()
    return harrell_c(data.time[rows], data.event[rows], first["risk"].to_numpy())


def permutation_null(
    data: SurvivalData,
    spec: FeatureSpec,
    make_model: MakeModel,
    folds: int,
    seed: int,
    n_permutations: int,
    progress: bool = True,
) -> np.ndarray:
    """Pooled out-of-fold Harrell's C of the whole nested CV (one repeat) on outcome-shuffled data.

    Outcomes (time and event together) are permuted across patients, which breaks any link to the features
    while keeping the outcome distribution; everything else, including every inner CV, is rerun.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 271828]))
    null = []
    with make_progress() as bar:
        task = bar.add_task("permutation test", total=n_permutations, visible=progress)
        for _ in range(n_permutations):
            perm = rng.permutation(len(data))
            shuffled = data.with_outcomes(data.time[perm], data.event[perm])
            _, parts = _outer_cv(
                shuffled, spec, make_model, folds, 1, seed, np.zeros(0), np.zeros(0), 0.0, False
            )
            oof = pd.concat(parts, ignore_index=True)
            null.append(_single_repeat_c(oof, shuffled))
            bar.advance(task)
    return np.array(null)
