"""The run report: one self-contained HTML file built from whatever parts of a run folder exist.

Images are inlined as base64 data URIs and the CSS is inline, so the file opens anywhere without network
access.  Every string taken from the run (patient ids, column names, file names, reasons) passes through
Jinja2's autoescaping; the template marks nothing from the input as safe.  With ``no_photos`` no patient
photo, reconstruction or edited patient face is included: only faces the generator made up (the edited
cohort-mean face), so the report can leave the clinic.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from stylesurv import __version__
from stylesurv.core.aligned import QC_FILE, patient_file, read_qc
from stylesurv.core.errors import InputError
from stylesurv.explain.direction import GROUP_RESOLUTIONS
from stylesurv.explain.result import (
    SUMMARY_FILE,
    AttributionSummary,
    ExplainResult,
    FaceSubspaceRefit,
    FaceSubspaceSummary,
    NuisanceRemoval,
    OrthogonalSummary,
    PatternSummary,
    RefitScore,
    load_explain_result,
)
from stylesurv.report import plots

MAX_QC_ROWS = 100
MAX_PHOTO_PAIRS = 12
DISPLAY_PX = 160  # small faces are shown at least this wide (pixelated, not blurred)


@dataclass
class ReportData:
    """Everything the template shows; absent parts are None and named in ``missing``."""

    run_name: str
    generated: str
    version: str
    no_photos: bool
    cohort: dict[str, Any] | None = None
    qc_counts: list[tuple[str, int]] | None = None
    qc_rows: list[dict[str, str]] | None = None
    qc_more: int = 0
    photo_pairs: list[dict[str, Any]] | None = None
    models: list[dict[str, Any]] | None = None
    metric_names: list[str] = field(default_factory=list)
    cindex_png: str | None = None
    km: list[dict[str, Any]] | None = None
    explain: dict[str, Any] | None = None
    missing: list[tuple[str, str]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ helpers
def data_uri(data: bytes, mime: str) -> str:
    """A base64 data URI."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_uri(path: Path) -> str | None:
    """A PNG (or animated GIF) file re-encoded by PIL as a data URI; None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with Image.open(path) as img:
            buffer = io.BytesIO()
            if getattr(img, "n_frames", 1) > 1:
                img.save(buffer, format="GIF", save_all=True, loop=0)
                return data_uri(buffer.getvalue(), "image/gif")
            img.convert("RGB").save(buffer, format="PNG")
    except OSError:
        return None
    return data_uri(buffer.getvalue(), "image/png")


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); re-run the stage that wrote it") from None
    return data if isinstance(data, dict) else None


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


# ---------------------------------------------------------------------------------------------- sections
def cohort_section(run: Path, oof_frames: dict[str, pd.DataFrame]) -> dict[str, Any] | None:
    """n, events, censoring and median follow-up from validate/summary.json, else from out-of-fold risks."""
    summary = _read_json(run / "validate" / "summary.json")
    if summary is not None:
        summary = summary.get("summary", summary) or {}
        if "n" in summary:
            return {
                "n": summary.get("n"),
                "events": summary.get("events"),
                "censoring_rate": summary.get("censoring_rate"),
                "median_followup_days": summary.get("median_followup_days"),
                "source": "validate/summary.json",
            }
    if oof_frames:
        from stylesurv.cohort.table import reverse_km_median_followup

        frame = next(iter(oof_frames.values()))
        event = frame["event"].to_numpy(int)
        return {
            "n": len(frame),
            "events": int(event.sum()),
            "censoring_rate": float(1 - event.mean()),
            "median_followup_days": reverse_km_median_followup(frame["time"].to_numpy(float), event),
            "source": "out-of-fold risk table",
        }
    return None


def qc_section(run: Path) -> tuple[list[tuple[str, int]], list[dict[str, str]], int] | None:
    """Counts per QC status and the rows that are not ok (first MAX_QC_ROWS)."""
    if not (run / "aligned" / QC_FILE).is_file():
        return None
    table = read_qc(run / "aligned")
    counts = sorted(Counter(r["status"] for r in table).items())
    bad = [r for r in table if r["status"] != "ok"]
    rows = [
        {"patient_id": r["patient_id"], "status": r["status"], "reason": r.get("reason", "")}
        for r in bad[:MAX_QC_ROWS]
    ]
    return counts, rows, max(len(bad) - MAX_QC_ROWS, 0)


def photo_pairs_section(run: Path, explain: ExplainResult | None) -> list[dict[str, Any]] | None:
    """Aligned photo next to its reconstruction for the patients that explain rendered."""
    if explain is None:
        return None
    recon = explain.images.recon
    metrics = _latent_metrics(run / "embed" / "latents.npz")
    pairs = []
    for pid in list(recon)[:MAX_PHOTO_PAIRS]:
        photo_path = patient_file(run / "aligned", pid)
        recon_path = patient_file(run / "explain" / "recon", pid)
        if photo_path is None or recon_path is None:
            continue
        photo, rec = image_uri(photo_path), image_uri(recon_path)
        if photo and rec:
            pairs.append({"patient_id": pid, "photo": photo, "recon": rec, "metrics": metrics.get(pid, {})})
    return pairs or None


def _latent_metrics(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    from stylesurv.core.latents import load_latents

    latents = load_latents(path)
    return {
        pid: {name: _fmt(float(values[i])) for name, values in sorted(latents.metrics.items())}
        for i, pid in enumerate(latents.patient_id.tolist())
    }


def _metric_cell(row: pd.Series) -> dict[str, Any]:
    """A CV summary row (mean, sd, ci_low, ci_high) as the table's text and the forest plot's numbers."""
    finite = {k: float(row[k]) if np.isfinite(row[k]) else None for k in ("mean", "sd", "ci_low", "ci_high")}
    low, high = finite["ci_low"], finite["ci_high"]
    text = _fmt(finite["mean"]) + (f" ± {_fmt(finite['sd'])}" if finite["sd"] is not None else "")
    text += f" [{_fmt(low)}, {_fmt(high)}]" if low is not None and high is not None else ""
    return {"text": text, "estimate": finite["mean"], "low": low, "high": high}


def models_section(run: Path) -> tuple[list[dict[str, Any]], list[str], dict[str, pd.DataFrame]]:
    """Per model bundle under fit/ (a folder with cv_results.json): its CV metrics (with CIs) and
    out-of-fold risk table."""
    from stylesurv.survival.bundle import CV_RESULTS, load_cv_results

    models, names, oof = [], [], {}
    fit = run / "fit"
    for folder in sorted(p for p in fit.iterdir() if p.is_dir()) if fit.is_dir() else []:
        if not (folder / CV_RESULTS).is_file():
            continue
        cv = load_cv_results(folder)
        row: dict[str, Any] = {"name": folder.name, "metrics": {}}
        for metric, entry in cv.summary.iterrows():
            if not np.isfinite(entry["mean"]):
                continue
            if metric not in names:
                names.append(str(metric))
            row["metrics"][str(metric)] = _metric_cell(entry)
        models.append(row)
        if len(cv.oof):
            missing = {"time", "event", "risk"} - set(cv.oof.columns)
            if missing:
                raise InputError(
                    f"{folder}/oof_risk.csv: missing column(s) {', '.join(sorted(missing))}; "
                    "re-run `stylesurv fit`"
                )
            oof[folder.name] = _per_patient_risk(cv.oof.dropna(subset=["time", "event", "risk"]))
    return models, names, oof


def _per_patient_risk(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: with repeated CV, the mean over repeats of the risk's rank within each repeat."""
    if "patient_id" not in frame.columns or not frame["patient_id"].duplicated().any():
        return frame
    by = frame["repeat"] if "repeat" in frame.columns else frame.groupby("patient_id").cumcount()
    ranked = frame.assign(risk=frame.groupby(by)["risk"].rank(pct=True))
    return (
        ranked.groupby("patient_id", sort=False)
        .agg(time=("time", "first"), event=("event", "first"), risk=("risk", "mean"))
        .reset_index()
    )


def _harrell_entry(row: dict[str, Any]) -> dict[str, Any] | None:
    """The model's pooled out-of-fold Harrell C (which has a CI), else its mean fold Harrell C."""
    metrics = row["metrics"]
    for key in ("oof_harrell_c", "harrell_c"):
        if key in metrics:
            return metrics[key]
    return None


# ------------------------------------------------------------------------------------------------- build
def collect(run_dir: str | Path, no_photos: bool = False) -> ReportData:
    """Read every part of the run folder that exists into a ReportData, noting what is missing."""
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"{run}: run folder not found")
    data = ReportData(
        run_name=run.resolve().name,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        version=__version__,
        no_photos=no_photos,
    )
    models, names, oof = models_section(run)
    data.cohort = cohort_section(run, oof)
    if data.cohort is None:
        data.missing.append(("Cohort summary", "validate/summary.json"))

    qc = qc_section(run)
    if qc is None:
        data.missing.append(("Quality control", "aligned/qc.csv"))
    else:
        data.qc_counts, data.qc_rows, data.qc_more = qc

    has_explain = (run / "explain" / SUMMARY_FILE).is_file()
    explain = load_explain_result(run / "explain") if has_explain else None
    if not no_photos:
        data.photo_pairs = photo_pairs_section(run, explain)
        if data.photo_pairs is None:
            data.missing.append(("Photos and reconstructions", "aligned/<id>.png and explain/recon/"))

    if models:
        data.models, data.metric_names = models, names
        forest = [(m["name"], e["estimate"], e["low"], e["high"]) for m in models if (e := _harrell_entry(m))]
        if forest:
            data.cindex_png = data_uri(plots.cindex_figure(forest), "image/png")
    else:
        data.missing.append(("Model metrics", "fit/<model>/cv_results.json"))

    if oof:
        data.km = []
        for name, frame in oof.items():
            png, p_values = plots.km_figure(frame["time"], frame["event"], frame["risk"].to_numpy(), name)
            data.km.append({"name": name, "png": data_uri(png, "image/png"), "p": p_values})
    else:
        data.missing.append(("Kaplan-Meier curves", "fit/<model>/oof_risk.csv"))

    if explain is None:
        data.missing.append(("Health direction, edited faces, attribution, nuisance", "explain/summary.json"))
    else:
        data.explain = explain_section(run / "explain", explain, no_photos)
    return data


def explain_section(folder: Path, result: ExplainResult, no_photos: bool) -> dict[str, Any]:
    """The explain outputs ready for the template: images as data URIs, numbers formatted."""

    def inline(name: str | None) -> str | None:
        return image_uri(folder / Path(name).name) if name is not None else None

    images, attribution = result.images, result.attribution
    section: dict[str, Any] = {
        "result": result,
        "headline": result.table(),
        "edit_mean": inline(images.edit_mean),
        "edit_mean_gif": inline(images.edit_mean_gif),
        "edit_patients": None if no_photos else inline(images.edit_patients),
        "edit_pattern": inline(images.edit_pattern),
        "edit_face_local": inline(images.edit_face_local),
        "alphas": ", ".join(f"{a:+g}" for a in result.alphas),
        "patients": [] if no_photos else list(result.patients),
        "attribution_png": None,
        "layer_groups": [],
    }
    if attribution is not None and attribution.regions:
        margin = attribution.face_with_margin
        section.update(
            attribution_png=data_uri(plots.attribution_figure(attribution), "image/png"),
            attribution_rows=attribution_rows(attribution),
            attribution_headline=attribution_headline(attribution),
            margin_definition=margin.definition if margin is not None else None,
            attribution_step=f"{attribution.step_sd:g}",
            attribution_patients=_fmt(attribution.n_patients),
            attribution_random=_fmt(attribution.n_random),
            layer_groups=layer_group_rows(attribution),
        )
    section["orthogonal"] = orthogonal_section(result.nuisance_orthogonal, attribution)
    section["pattern"] = pattern_section(result.pattern, attribution)
    section["face_subspace"] = face_subspace_section(
        result.face_subspace, result.face_subspace_refit, attribution
    )
    probes = result.probes
    section["probe_source"] = probes.source if probes is not None else ""
    section["probe_rows"] = [
        {
            "name": p.name,
            "source": {"photo": "aligned photo", "truth": "true factor"}.get(p.source, ""),
            "r2": _fmt(p.r2_cv),
            "cosine": _fmt(p.cosine),
            "n": p.n,
        }
        for p in (probes.items if probes is not None else ())
    ]
    section["truth_rows"] = [(k, _fmt(v)) for k, v in (result.truth_correlations or {}).items()]
    section["remove"] = remove_section(result.remove_nuisance, bool(result.adjusted_for))
    weights = result.direction.group_weights
    section["group_rows"] = [(k, _fmt(weights[k])) for k in GROUP_RESOLUTIONS if k in weights]
    return section


# ------------------------------------------------------------------------------------ attribution parts
REGION_MEANINGS = {
    "background": "Share of the change behind the person.",
    "face": "Share of the change on the face mask: skin from forehead to chin, within the jaw line.",
    "clothing": "Share of the change on the clothing.",
    "other": "Share of the change on hair, neck and ears.",
}


def _random_text(mean: float | None, sd: float | None) -> str:
    return _fmt(mean) + (f" ± {_fmt(sd)}" if sd is not None else "")


def _of_d(value: float | None) -> str:
    """The sentence ending that quotes d's own number, when there is one."""
    return f" (d: {_fmt(value)})." if value is not None else "."


def attribution_rows(attribution: AttributionSummary) -> list[dict[str, str]]:
    """Per region (and the face with its margin, right after the face): what it is and its three shares."""
    rows = []
    for region in attribution.regions:
        rows.append(
            {
                "region": region,
                "meaning": REGION_MEANINGS.get(region, "Share of the change in this mask region."),
                "health": _fmt(attribution.health.get(region)),
                "random": _random_text(
                    attribution.random_mean.get(region), attribution.random_sd.get(region)
                ),
                "area": _fmt(attribution.area.get(region)),
            }
        )
        wide = attribution.face_with_margin
        if region == "face" and wide is not None:
            rows.append(
                {
                    "region": plots.margin_label(attribution),
                    "meaning": "Share of the change on the face mask widened by the margin, so that a "
                    "moving face contour counts as face.",
                    "health": _fmt(wide.health),
                    "random": _random_text(wide.random_mean, wide.random_sd),
                    "area": _fmt(wide.area),
                }
            )
    return rows


def attribution_headline(attribution: AttributionSummary) -> list[str]:
    """The face shares in one plain sentence each: the strict face mask, then the face with its margin."""
    lines = []
    if "face" in attribution.health:
        random = _random_text(attribution.random_mean.get("face"), attribution.random_sd.get("face"))
        lines.append(
            f"Face mask: {_fmt(attribution.health['face'])} of the image change along the health direction "
            f"falls inside it (random directions: {random}); the face is "
            f"{_fmt(attribution.area.get('face'))} of the image area."
        )
    wide = attribution.face_with_margin
    if wide is not None:
        random = _random_text(wide.random_mean, wide.random_sd)
        lines.append(
            f"{plots.margin_label(attribution).capitalize()}: {_fmt(wide.health)} of the change falls "
            f"inside it (random directions: {random}); it is {_fmt(wide.area)} of the image area."
        )
    return lines


def _group_layers(low: int | None, high: int | None) -> str:
    if low is None or high is None:
        return ""
    return f"{low}–{high} px" if high < GROUP_RESOLUTIONS["fine"][1] else f"{low} px and up"


def layer_group_rows(attribution: AttributionSummary) -> list[dict[str, str]]:
    """Per W+ layer group (coarse, middle, fine first): its share of |d|^2, of the change energy and the
    face shares of its part of the edit; empty for W codes and older runs."""
    groups = attribution.groups or {}
    names = [k for k in GROUP_RESOLUTIONS if k in groups] + [k for k in groups if k not in GROUP_RESOLUTIONS]
    rows = []
    for name in names:
        group = groups[name]
        low, high = GROUP_RESOLUTIONS.get(name, (None, None))
        rows.append(
            {
                "name": name,
                "layers": _group_layers(low, high),
                "weight": _fmt(group.weight),
                "energy": _fmt(group.energy_share),
                "face": _fmt(group.shares.health.get("face")),
                "face_margin": _fmt(group.shares.face_with_margin),
            }
        )
    return rows


def _d_face(attribution: AttributionSummary | None) -> float | None:
    """d's own strict face share, to quote next to another direction's."""
    return attribution.health.get("face") if attribution is not None else None


def _d_face_margin(attribution: AttributionSummary | None) -> float | None:
    margin = attribution.face_with_margin if attribution is not None else None
    return margin.health if margin is not None else None


def pattern_section(
    pattern: PatternSummary | None, attribution: AttributionSummary | None
) -> dict[str, Any] | None:
    """The covariance-weighted direction next to d: cosine, truth correlation and where its edit lands."""
    if pattern is None:
        return None
    rows = [
        (
            "cosine of the pattern with d",
            _fmt(pattern.cosine_with_d),
            "How close the pattern is to the model's own direction d (1: the same direction).",
        )
    ]
    truth = pattern.truth_correlations or {}
    if "lp_face" in truth:
        rows.append(
            (
                "pattern: r with the true facial risk",
                _fmt(truth["lp_face"]),
                "Correlation of its attribute with the synthetic world's true facial risk (in sample).",
            )
        )
    own = pattern.attribution
    if own is not None:
        d_background = attribution.health.get("background") if attribution is not None else None
        for label, value, of_d, meaning in (
            ("pattern: face share", own.health.get("face"), _d_face(attribution),
             "Share of the image change along the pattern inside the face mask"),
            ("pattern: face share with margin", own.face_with_margin, _d_face_margin(attribution),
             "The same inside the face mask widened by the contour margin"),
            ("pattern: background share", own.health.get("background"), d_background,
             "Share of the change in the background"),
        ):  # fmt: skip
            rows.append((label, _fmt(value), meaning + _of_d(of_d)))
    return {"rows": rows, "definition": pattern.definition}


FACE_REFIT_ROWS = (
    ("whole", "all of the codes"),
    ("face", "the face subspace only"),
    ("rest", "everything but the face subspace"),
)


def _refit_row(score: RefitScore) -> dict[str, str]:
    return {
        "c": _fmt(score.c_index),
        "latent_c": _fmt(score.c_index_latent),
        "r": _fmt(score.r_lp_face),
        "share": _fmt(score.face_share),
    }


def face_subspace_section(
    found: FaceSubspaceSummary | None, refit: FaceSubspaceRefit | None, attribution: AttributionSummary | None
) -> dict[str, Any] | None:
    """The face subspace: its size, the face-local direction's cosine with d and face share, the model
    refitted on the codes inside and outside it, and the refits inside it at several thresholds."""
    if found is None:
        return None
    rows = [
        (
            "directions in the face subspace",
            f"{_fmt(found.dim)} of {_fmt(found.n_components)}",
            f"Principal directions of the codes (recombined) whose image change lies at least "
            f"{_fmt(found.threshold, 2)} inside the face masks of {_fmt(found.n_patients)} patients.",
        ),
        (
            "cosine of the face-local direction with d",
            _fmt(found.cosine_with_d),
            "How much of the model's direction d lies in the face subspace (1: all of it).",
        ),
    ]
    if found.attribution is not None:
        rows.append(
            (
                "face-local direction: face share",
                _fmt(found.attribution.health.get("face")),
                "Share of its image change inside the face mask, on the attribution patients"
                + _of_d(_d_face(attribution)),
            )
        )
    table, curve = [], []
    if refit is not None:
        for key, name in FACE_REFIT_ROWS:
            score = getattr(refit, key)
            if score is not None:
                table.append({"name": name, **_refit_row(score)})
        curve = [
            {"threshold": _fmt(point.threshold, 2), "dim": _fmt(point.dim), **_refit_row(point.score)}
            for point in refit.curve
        ]
    return {
        "rows": rows,
        "refit": table,
        "curve": curve,
        "refit_info": refit.refit if refit is not None else None,
        "has_r": any(row["r"] != "–" for row in table + curve),
        "has_share": any(row["share"] != "–" for row in table + curve),
        "definition": found.definition,
    }


def orthogonal_section(
    orthogonal: OrthogonalSummary | None, attribution: AttributionSummary | None
) -> dict[str, Any] | None:
    """The direction with the nuisance probes' span projected out: numbers with one sentence each."""
    if orthogonal is None:
        return None
    rows = [
        (
            "nuisance directions projected out",
            _fmt(orthogonal.n_directions),
            f"How many independent nuisance-probe directions (probes with CV R² ≥ "
            f"{_fmt(orthogonal.min_r2, 2)}) were removed from d.",
        ),
        (
            "share of d removed",
            _fmt(orthogonal.removed_share),
            "The part of d's squared length that lay along those directions (0: d reads no nuisance).",
        ),
        (
            "cosine with d",
            _fmt(orthogonal.cosine_with_d),
            "How close the cleaned direction is to d (1: the same direction).",
        ),
    ]
    own = orthogonal.attribution
    if own is not None:
        rows.append(
            (
                "face share of its change",
                _fmt(own.health.get("face")),
                "Share of the image change along the cleaned direction inside the face mask"
                + _of_d(_d_face(attribution)),
            )
        )
        rows.append(
            (
                "face share with margin",
                _fmt(own.face_with_margin),
                "The same inside the face mask widened by the contour margin"
                + _of_d(_d_face_margin(attribution)),
            )
        )
    return {"rows": rows, "definition": orthogonal.definition, "none_left": orthogonal.cosine_with_d < 1e-6}


def remove_section(removal: NuisanceRemoval | None, adjusted: bool) -> dict[str, Any] | None:
    """The model refitted with and without the nuisance directions: rows and which columns they have."""
    if removal is None:
        return None
    scores = (("plain codes", removal.plain), ("codes without nuisance directions", removal.removed))
    return {
        "removal": removal,
        "rows": [{"name": name, **_refit_row(score)} for name, score in scores],
        # the face part of the model alone differs from the whole model only when it is adjusted
        "has_latent": adjusted and removal.plain.c_index_latent is not None,
        "has_r": removal.plain.r_lp_face is not None,
    }


def render(data: ReportData) -> str:
    """The HTML text of a report (Jinja2, autoescaping on)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(d=data, fmt=_fmt, display_px=DISPLAY_PX)


def write_report(
    run_dir: str | Path, out: str | Path | None = None, no_photos: bool = False
) -> tuple[Path, ReportData]:
    """Build the report of ``run_dir`` and write it atomically (default RUN_DIR/report.html)."""
    from stylesurv.core.atomic import write_text_atomic

    data = collect(run_dir, no_photos=no_photos)
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    write_text_atomic(path, render(data))
    return path, data
