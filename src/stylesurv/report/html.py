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


def photo_pairs_section(run: Path, explain: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """Aligned photo next to its reconstruction for the patients that explain rendered."""
    if explain is None:
        return None
    recon = explain.get("images", {}).get("recon", {})
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


def _ci(entry: Any) -> tuple[float | None, float | None, float | None, float | None]:
    """(estimate, sd, ci_low, ci_high) of a metric entry: a number, or a dict with mean/sd/ci fields."""
    if isinstance(entry, int | float):
        return float(entry), None, None, None
    if not isinstance(entry, dict):
        return None, None, None, None
    est = entry.get("mean", entry.get("estimate", entry.get("value")))
    ci = entry.get("ci") or entry.get("ci95")
    low = entry.get("ci_low", ci[0] if isinstance(ci, list | tuple) and len(ci) == 2 else None)
    high = entry.get("ci_high", ci[1] if isinstance(ci, list | tuple) and len(ci) == 2 else None)
    return est, entry.get("sd"), low, high


def models_section(run: Path) -> tuple[list[dict[str, Any]], list[str], dict[str, pd.DataFrame]]:
    """Per model folder under fit/: its CV metrics (with CIs) and out-of-fold risk table."""
    models, names, oof = [], [], {}
    fit = run / "fit"
    for folder in sorted(p for p in fit.iterdir() if p.is_dir()) if fit.is_dir() else []:
        cv = _read_json(folder / "cv_results.json")
        if cv is not None:
            row: dict[str, Any] = {"name": folder.name, "metrics": {}}
            for metric, entry in _metric_entries(cv):
                est, sd, low, high = _ci(entry)
                if est is None:
                    continue
                if metric not in names:
                    names.append(metric)
                text = _fmt(est) + (f" ± {_fmt(sd)}" if sd is not None else "")
                text += f" [{_fmt(low)}, {_fmt(high)}]" if low is not None and high is not None else ""
                row["metrics"][metric] = {"text": text, "estimate": est, "low": low, "high": high}
            models.append(row)
        oof_path = folder / "oof_risk.csv"
        if oof_path.is_file():
            frame = pd.read_csv(oof_path, dtype={"patient_id": str})
            missing = {"time", "event", "risk"} - set(frame.columns)
            if missing:
                raise InputError(
                    f"{oof_path}: missing column(s) {', '.join(sorted(missing))}; re-run `stylesurv fit`"
                )
            oof[folder.name] = _per_patient_risk(frame.dropna(subset=["time", "event", "risk"]))
    return models, names, oof


def _metric_entries(cv: dict[str, Any]) -> list[tuple[str, Any]]:
    """(metric, entry) pairs of cv_results.json: its ``summary`` records (metric, mean, sd, ci_low, ci_high)
    or a ``metrics`` mapping."""
    summary = cv.get("summary")
    if isinstance(summary, list):
        return [(str(r["metric"]), r) for r in summary if isinstance(r, dict) and "metric" in r]
    metrics = cv.get("metrics")
    return [(str(k), v) for k, v in metrics.items()] if isinstance(metrics, dict) else []


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
    for key in ("oof_harrell_c", "harrell_c", "c_index"):
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

    explain = _read_json(run / "explain" / "summary.json")
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


def explain_section(folder: Path, summary: dict[str, Any], no_photos: bool) -> dict[str, Any]:
    """The explain outputs ready for the template: images as data URIs, numbers formatted."""
    images = summary.get("images", {})

    def inline(key: str) -> str | None:
        name = images.get(key)
        return image_uri(folder / Path(name).name) if isinstance(name, str) else None

    section: dict[str, Any] = {
        "summary": summary,
        "edit_mean": inline("edit_mean"),
        "edit_mean_gif": inline("edit_mean_gif"),
        "edit_patients": None if no_photos else inline("edit_patients"),
        "alphas": ", ".join(f"{a:+g}" for a in summary.get("alphas", [])),
        "patients": [] if no_photos else summary.get("patients", []),
        "attribution_png": None,
    }
    attribution = summary.get("attribution")
    if isinstance(attribution, dict) and attribution.get("regions"):
        section["attribution_png"] = data_uri(plots.attribution_figure(attribution), "image/png")
        section["attribution_rows"] = attribution_rows(attribution)
        section["attribution_headline"] = attribution_headline(attribution)
        section["margin_definition"] = _dig(attribution, "face_with_margin", "definition")
        step = attribution.get("step_sd")
        section["attribution_step"] = f"{step:g}" if isinstance(step, int | float) else "–"
        section["attribution_patients"] = _fmt(attribution.get("n_patients"))
        section["attribution_random"] = _fmt(attribution.get("n_random"))
    section["layer_groups"] = layer_group_rows(attribution if isinstance(attribution, dict) else {})
    section["orthogonal"] = orthogonal_section(summary.get("nuisance_orthogonal"), attribution)
    section["pattern"] = pattern_section(summary.get("pattern"), attribution)
    section["edit_pattern"] = inline("edit_pattern")
    section["face_subspace"] = face_subspace_section(
        summary.get("face_subspace"), summary.get("face_subspace_refit"), attribution
    )
    section["edit_face_local"] = inline("edit_face_local")
    probes = summary.get("probes") or {}
    section["probe_source"] = probes.get("source", "")
    section["probe_rows"] = [
        {
            "name": p["name"],
            "source": {"photo": "aligned photo", "truth": "true factor"}.get(p.get("source", ""), ""),
            "r2": _fmt(p["r2_cv"]),
            "cosine": _fmt(p["cosine"]),
            "n": p["n"],
        }
        for p in probes.get("items", [])
    ]
    section["truth_rows"] = [(k, _fmt(v)) for k, v in (summary.get("truth_correlations") or {}).items()]
    section["remove"] = summary.get("remove_nuisance")
    direction = summary.get("direction", {})
    weights = direction.get("group_weights") or {}
    section["group_rows"] = [(k, _fmt(weights[k])) for k in GROUP_RESOLUTIONS if k in weights]
    return section


# ------------------------------------------------------------------------------------ attribution parts
REGION_MEANINGS = {
    "background": "Share of the change behind the person.",
    "face": "Share of the change on the face mask: skin from forehead to chin, within the jaw line.",
    "clothing": "Share of the change on the clothing.",
    "other": "Share of the change on hair, neck and ears.",
}


def _dig(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]...``, or None where a level is missing or not a mapping (older runs)."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _margin_label(attribution: dict[str, Any]) -> str:
    margin = attribution.get("face_margin_px")
    return f"face + {margin:g} px margin" if isinstance(margin, int | float) else "face + margin"


def _random_text(mean: Any, sd: Any) -> str:
    return _fmt(mean) + (f" ± {_fmt(sd)}" if isinstance(sd, int | float) else "")


def attribution_rows(attribution: dict[str, Any]) -> list[dict[str, str]]:
    """Per region (and the face with its margin, right after the face): what it is and its three shares."""
    rows = []
    for region in attribution.get("regions", []):
        rows.append(
            {
                "region": str(region),
                "meaning": REGION_MEANINGS.get(str(region), "Share of the change in this mask region."),
                "health": _fmt(_dig(attribution, "health", region)),
                "random": _random_text(
                    _dig(attribution, "random_mean", region), _dig(attribution, "random_sd", region)
                ),
                "area": _fmt(_dig(attribution, "area", region)),
            }
        )
        wide = attribution.get("face_with_margin")
        if region == "face" and isinstance(wide, dict):
            rows.append(
                {
                    "region": _margin_label(attribution),
                    "meaning": "Share of the change on the face mask widened by the margin, so that a "
                    "moving face contour counts as face.",
                    "health": _fmt(wide.get("health")),
                    "random": _random_text(wide.get("random_mean"), wide.get("random_sd")),
                    "area": _fmt(wide.get("area")),
                }
            )
    return rows


def attribution_headline(attribution: dict[str, Any]) -> list[str]:
    """The face shares in one plain sentence each: the strict face mask, then the face with its margin."""
    lines = []
    face = _dig(attribution, "health", "face")
    if isinstance(face, int | float):
        random = _random_text(
            _dig(attribution, "random_mean", "face"), _dig(attribution, "random_sd", "face")
        )
        lines.append(
            f"Face mask: {_fmt(face)} of the image change along the health direction falls inside it "
            f"(random directions: {random}); the face is {_fmt(_dig(attribution, 'area', 'face'))} of the "
            "image area."
        )
    wide = attribution.get("face_with_margin")
    if isinstance(wide, dict):
        random = _random_text(wide.get("random_mean"), wide.get("random_sd"))
        lines.append(
            f"{_margin_label(attribution).capitalize()}: {_fmt(wide.get('health'))} of the change falls "
            f"inside it (random directions: {random}); it is {_fmt(wide.get('area'))} of the image area."
        )
    return lines


def _group_layers(low: int | None, high: int | None) -> str:
    if low is None or high is None:
        return ""
    return f"{low}–{high} px" if high < GROUP_RESOLUTIONS["fine"][1] else f"{low} px and up"


def layer_group_rows(attribution: dict[str, Any]) -> list[dict[str, str]]:
    """Per W+ layer group (coarse, middle, fine first): its share of |d|^2, of the change energy and the
    face shares of its part of the edit; empty for W codes and older runs."""
    groups = attribution.get("groups")
    if not isinstance(groups, dict):
        return []
    names = [k for k in GROUP_RESOLUTIONS if k in groups] + [k for k in groups if k not in GROUP_RESOLUTIONS]
    rows = []
    for name in names:
        group = groups[name] if isinstance(groups[name], dict) else {}
        low, high = GROUP_RESOLUTIONS.get(name, (None, None))
        rows.append(
            {
                "name": str(name),
                "layers": _group_layers(low, high),
                "weight": _fmt(group.get("weight")),
                "energy": _fmt(group.get("energy_share")),
                "face": _fmt(_dig(group, "health", "face")),
                "face_margin": _fmt(group.get("face_with_margin")),
            }
        )
    return rows


def pattern_section(pattern: Any, attribution: Any) -> dict[str, Any] | None:
    """The covariance-weighted direction next to d: cosine, truth correlation and where its edit lands."""
    if not isinstance(pattern, dict):
        return None
    rows = [
        (
            "cosine of the pattern with d",
            _fmt(pattern.get("cosine_with_d")),
            "How close the pattern is to the model's own direction d (1: the same direction).",
        )
    ]
    truth = pattern.get("truth_correlations")
    if isinstance(truth, dict) and "lp_face" in truth:
        rows.append(
            (
                "pattern: r with the true facial risk",
                _fmt(truth["lp_face"]),
                "Correlation of its attribute with the synthetic world's true facial risk (in sample).",
            )
        )
    own = pattern.get("attribution")
    if isinstance(own, dict):
        for label, value, of_d, meaning in (
            ("pattern: face share", _dig(own, "health", "face"), _dig(attribution, "health", "face"),
             "Share of the image change along the pattern inside the face mask"),
            ("pattern: face share with margin", own.get("face_with_margin"),
             _dig(attribution, "face_with_margin", "health"),
             "The same inside the face mask widened by the contour margin"),
            ("pattern: background share", _dig(own, "health", "background"),
             _dig(attribution, "health", "background"),
             "Share of the change in the background"),
        ):  # fmt: skip
            rows.append(
                (label, _fmt(value), meaning + (f" (d: {_fmt(of_d)})." if isinstance(of_d, float) else "."))
            )
    definition = pattern.get("definition")
    return {"rows": rows, "definition": definition if isinstance(definition, str) else None}


FACE_REFIT_ROWS = (
    ("all", "all of the codes"),
    ("face", "the face subspace only"),
    ("rest", "everything but the face subspace"),
)


def face_subspace_section(found: Any, refit: Any, attribution: Any) -> dict[str, Any] | None:
    """The face subspace: its size, the face-local direction's cosine with d and face share, the model
    refitted on the codes inside and outside it, and the refits inside it at several thresholds."""
    if not isinstance(found, dict):
        return None
    threshold = _fmt(found.get("threshold"), 2)
    rows = [
        (
            "directions in the face subspace",
            f"{_fmt(found.get('dim'))} of {_fmt(found.get('n_components'))}",
            f"Principal directions of the codes (recombined) whose image change lies at least {threshold} "
            f"inside the face masks of {_fmt(found.get('n_patients'))} patients.",
        ),
        (
            "cosine of the face-local direction with d",
            _fmt(found.get("cosine_with_d")),
            "How much of the model's direction d lies in the face subspace (1: all of it).",
        ),
    ]
    own = found.get("attribution")
    if isinstance(own, dict):
        of_d = _dig(attribution, "health", "face")
        rows.append(
            (
                "face-local direction: face share",
                _fmt(_dig(own, "health", "face")),
                "Share of its image change inside the face mask, on the attribution patients"
                + (f" (d: {_fmt(of_d)})." if isinstance(of_d, float) else "."),
            )
        )
    table = []
    if isinstance(refit, dict):
        for key, name in FACE_REFIT_ROWS:
            if f"c_index_{key}" in refit:
                table.append(
                    {
                        "name": name,
                        "c": _fmt(refit[f"c_index_{key}"]),
                        "latent_c": _fmt(refit.get(f"c_index_latent_{key}")),
                        "r": _fmt(refit.get(f"r_lp_face_{key}")),
                        "share": _fmt(refit.get(f"face_share_{key}")),
                    }
                )
    curve = [
        {
            "threshold": _fmt(point.get("threshold"), 2),
            "dim": _fmt(point.get("dim")),
            "c": _fmt(point.get("c_index")),
            "latent_c": _fmt(point.get("c_index_latent")),
            "r": _fmt(point.get("r_lp_face")),
            "share": _fmt(point.get("face_share")),
        }
        for point in ((refit.get("curve") or []) if isinstance(refit, dict) else [])
        if isinstance(point, dict)
    ]
    definition = found.get("definition")
    return {
        "rows": rows,
        "refit": table,
        "curve": curve,
        "refit_info": refit if isinstance(refit, dict) else None,
        "has_r": any(row["r"] != "–" for row in table + curve),
        "has_share": any(row["share"] != "–" for row in table + curve),
        "definition": definition if isinstance(definition, str) else None,
    }


def orthogonal_section(orthogonal: Any, attribution: Any) -> dict[str, Any] | None:
    """The direction with the nuisance probes' span projected out: numbers with one sentence each."""
    if not isinstance(orthogonal, dict):
        return None
    count = orthogonal.get("n_directions")
    min_r2 = orthogonal.get("min_r2")
    threshold = f" (probes with CV R² ≥ {_fmt(min_r2, 2)})" if isinstance(min_r2, int | float) else ""
    rows = [
        (
            "nuisance directions projected out",
            _fmt(count),
            f"How many independent nuisance-probe directions{threshold} were removed from d.",
        ),
        (
            "share of d removed",
            _fmt(orthogonal.get("removed_share")),
            "The part of d's squared length that lay along those directions (0: d reads no nuisance).",
        ),
        (
            "cosine with d",
            _fmt(orthogonal.get("cosine_with_d")),
            "How close the cleaned direction is to d (1: the same direction).",
        ),
    ]
    own = orthogonal.get("attribution")
    if isinstance(own, dict):
        d_face = _dig(attribution, "health", "face")
        d_wide = _dig(attribution, "face_with_margin", "health")
        rows.append(
            (
                "face share of its change",
                _fmt(_dig(own, "health", "face")),
                "Share of the image change along the cleaned direction inside the face mask"
                + (f" (d: {_fmt(d_face)})." if isinstance(d_face, int | float) else "."),
            )
        )
        if "face_with_margin" in own:
            rows.append(
                (
                    "face share with margin",
                    _fmt(own.get("face_with_margin")),
                    "The same inside the face mask widened by the contour margin"
                    + (f" (d: {_fmt(d_wide)})." if isinstance(d_wide, int | float) else "."),
                )
            )
    definition = orthogonal.get("definition")
    cosine = orthogonal.get("cosine_with_d")
    return {
        "rows": rows,
        "definition": definition if isinstance(definition, str) else None,
        "none_left": isinstance(cosine, int | float) and cosine < 1e-6,
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
