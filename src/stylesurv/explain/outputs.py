"""`stylesurv explain` as a library call: direction, attribute, edited faces, attribution, nuisance probes.

Everything is written into one output folder, atomically (a killed run leaves the previous folder):

    health_attribute.csv      patient_id, health_attribute (+ health_<group> for W+ codes)
    edit_mean.png / .gif      the cohort-mean code moved along the direction (generated face, shareable)
    edit_patients.png / .gif  chosen patients moved along the direction (rows)
    recon/<patient_id>.png    the chosen patients' reconstructions (a = 0)
    nuisance.csv              probe R^2 and cosine with the direction per attribute
    direction_orthogonal.npy  the direction with the nuisance probes' span projected out (with probes)
    direction_face_local.npy  the direction projected onto the face subspace (with --aligned; localize.py)
    edit_face_local.png       the mean face moved along the face-local direction
    face_subspace.npz         the face subspace itself (`stylesurv fit --face-subspace`: a face-bound model)
    summary.json              every number above, the inputs and the options (explain.result.ExplainResult)

summary.json's ``attribution`` holds the strict face-mask shares (``health``, ``random_mean``, ``area``),
the face-with-contour-margin shares (``face_with_margin``) and, for W+, each layer group's part of the edit
(``groups``); ``nuisance_orthogonal`` holds how much of d lay in the nuisance span and where the rest acts;
``face_subspace`` the face subspace's spectrum, the face-local direction's cosine with d and its shares, and
``face_subspace_refit`` (when the caller has the outcomes) the model refitted inside and outside it, and
its ``curve``: the refit inside the subspace cut at several face-share thresholds, each with the measured
face share of its own health direction.
See attribution.py and nuisance.py for why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from stylesurv.core.aligned import load_masks, mask_file, patient_file
from stylesurv.core.atomic import write_json_atomic, write_text_atomic
from stylesurv.core.console import info, warn
from stylesurv.core.csvcells import safe_frame
from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.explain.attribution import attribute_regions, edit_shares, face_with_margin
from stylesurv.explain.config import ExplainConfig
from stylesurv.explain.direction import (
    HealthDirection,
    codes_in_space,
    health_direction,
    pattern_direction,
)
from stylesurv.explain.edit import image_grid, render_edits, save_gif, save_png, symmetric_alphas
from stylesurv.explain.localize import FACE_LOCAL_DEFINITION, localize
from stylesurv.explain.nuisance import (
    Probe,
    measure_photo_nuisances,
    orthogonal_to_nuisance,
    probe_attributes,
    truth_factors,
)
from stylesurv.explain.result import (
    SUMMARY_FILE,
    AttributionSummary,
    ExplainImages,
    ExplainResult,
    FaceBound,
    FaceSubspaceRefit,
    FaceSubspaceSummary,
    NuisanceRemoval,
    OrthogonalSummary,
    PatternSummary,
    ProbeRow,
    Probes,
    RegionShares,
)
from stylesurv.gan.face_subspace import (
    ANALYSIS_RESOLUTION,
    FaceSubspace,
    face_subspace,
    save_face_subspace,
)

SummaryT = TypeVar("SummaryT", OrthogonalSummary, FaceSubspaceSummary)

PATTERN_DEFINITION = (
    "-Cov(code, risk) over the cohort, unit length (Haufe et al. 2014): the direction along which the "
    "cohort's codes change as the model's risk falls, without the weight components that only cancel noise"
)


def choose_patients(ids: np.ndarray, attribute: np.ndarray, wanted: list[str], count: int) -> list[str]:
    """The named patients (all must exist), or ``count`` patients spread evenly over the attribute's range."""
    known = set(ids.tolist())
    missing = [p for p in wanted if p not in known]
    if missing:
        raise InputError(f"patient(s) {', '.join(missing[:5])} not in the latents file; check --patients")
    if wanted:
        return list(wanted)
    order = np.argsort(attribute, kind="stable")
    picks = np.unique(np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int))
    return [str(ids[order[i]]) for i in picks]


def attribute_table(latents: Latents, direction: HealthDirection, codes: np.ndarray) -> pd.DataFrame:
    """Per patient: the health attribute and, for W+ directions, the attribute of each layer group."""
    table = pd.DataFrame({"patient_id": latents.patient_id, "health_attribute": direction.attribute(codes)})
    for name, values in direction.group_attributes(codes).items():
        table[f"health_{name}"] = values
    return table


def _correlations(attribute: pd.DataFrame, factors: pd.DataFrame) -> dict[str, float]:
    merged = attribute.merge(factors, on="patient_id", how="inner")
    out = {}
    for name in factors.columns:
        if name == "patient_id":
            continue
        values = merged[name].to_numpy(dtype=np.float64)
        keep = np.isfinite(values)
        if keep.sum() >= 3 and np.std(values[keep]) > 0:
            out[name] = float(np.corrcoef(merged["health_attribute"].to_numpy()[keep], values[keep])[0, 1])
    return out


def explain_run(
    bundle: Any,
    generator: Any,
    latents: Latents,
    out_dir: str | Path,
    aligned_dir: str | Path | None = None,
    truth_csv: str | Path | None = None,
    options: ExplainConfig | None = None,
    inputs: dict[str, str] | None = None,
    subspace: FaceSubspace | None = None,
    face_subspace_refit: FaceSubspaceRefit | None = None,
    remove_nuisance: NuisanceRemoval | None = None,
) -> ExplainResult:
    """Compute and write every explain output into ``out_dir``; return the result that summary.json holds.

    ``bundle`` needs ``latent_direction()``; ``generator`` the Generator API (``synthesis``, ``num_ws``).
    ``subspace`` (from :func:`find_face_subspace`, which the caller also needs to refit the model on it)
    adds the face-local direction and its attribution; the held-out refits (``face_subspace_refit``,
    ``remove_nuisance``: studies.refit) are recorded as given.
    """
    from stylesurv.core.atomic import atomic_dir

    opts = options or ExplainConfig()
    gradient = np.asarray(bundle.latent_direction(), dtype=np.float64)
    codes = codes_in_space(latents, tuple(gradient.shape))
    direction = health_direction(gradient, codes)
    pattern = pattern_direction(gradient, codes)
    attributes = attribute_table(latents, direction, codes)
    attributes["pattern_attribute"] = pattern.attribute(codes)
    ids = latents.patient_id
    space = "styles" if latents.meta.get("space") == "styles" else ("w" if gradient.ndim == 1 else "wplus")
    # Faces are rendered from the richest codes (W+ when present), so reconstructions keep their detail.
    render_codes = latents.wplus if latents.wplus is not None else codes
    attribution = found_subspace = edit_face_local = None
    shares: dict[str, RegionShares] = {}  # where the edits along the other directions act
    with atomic_dir(out_dir) as tmp:
        write_text_atomic(
            tmp / "health_attribute.csv", safe_frame(attributes).to_csv(index=False, float_format="%.6g")
        )
        np.save(tmp / "direction.npy", direction.vector.astype(np.float32))
        alphas = symmetric_alphas(opts.max_sd, opts.steps)
        mean_code = render_codes.mean(axis=0, keepdims=True)
        chosen, recon = _write_edits(tmp, generator, render_codes, ids, attributes, direction, pattern, opts)
        nuisance = _probe_nuisances(tmp, codes, ids, attributes, direction, aligned_dir, truth_csv, opts)
        if aligned_dir is not None:
            others = {"pattern": pattern}
            if nuisance.cleaned is not None and nuisance.cleaned.direction is not None:
                others["nuisance_orthogonal"] = nuisance.cleaned.direction
            if subspace is not None:
                found_subspace, local = _write_face_local(
                    tmp, generator, subspace, direction, codes, mean_code, opts
                )
                if local is not None:
                    others["face_local"] = local
                    edit_face_local = FACE_LOCAL_EDIT
            measured_shares = _attribution(
                generator, render_codes, ids, direction, Path(aligned_dir), opts, others
            )
            if measured_shares is not None:
                attribution, shares = measured_shares
        result = ExplainResult(
            inputs=inputs or {},
            options=opts,
            n_patients=len(ids),
            space=space,
            direction=direction.summary(),
            images=ExplainImages(
                edit_mean="edit_mean.png",
                edit_mean_gif="edit_mean.gif",
                edit_patients="edit_patients.png",
                edit_patients_gif="edit_patients.gif",
                recon=recon,
                edit_pattern="edit_pattern.png",
                edit_face_local=edit_face_local,
            ),
            alphas=tuple(alphas.tolist()),
            patients=tuple(chosen),
            model=str(getattr(bundle, "model_name", "")),
            adjusted_for=tuple(getattr(bundle, "adjusted_for", ())),
            face_bound=_face_bound(bundle),
            pattern=PatternSummary(
                direction=pattern.summary(),
                cosine_with_d=float(pattern.vector.reshape(-1) @ direction.vector.reshape(-1)),
                definition=PATTERN_DEFINITION,
                truth_correlations=nuisance.pattern_truth,
                attribution=shares.get("pattern"),
            ),
            truth_correlations=nuisance.truth_correlations,
            probes=nuisance.probes,
            nuisance_orthogonal=_with_shares(nuisance.orthogonal, shares.get("nuisance_orthogonal")),
            face_subspace=_with_shares(found_subspace, shares.get("face_local")),
            attribution=attribution,
            face_subspace_refit=face_subspace_refit,
            remove_nuisance=remove_nuisance,
        )
        write_json_atomic(tmp / SUMMARY_FILE, result.to_json())
    return result


FACE_LOCAL_EDIT = "edit_face_local.png"


def _write_edits(
    tmp: Path,
    generator: Any,
    render_codes: np.ndarray,
    ids: np.ndarray,
    attributes: pd.DataFrame,
    direction: HealthDirection,
    pattern: HealthDirection,
    opts: ExplainConfig,
) -> tuple[list[str], dict[str, str]]:
    """The mean face and the chosen patients edited along the health and pattern directions (PNG, GIF),
    and the chosen patients' reconstructions; returns the chosen ids and the reconstructions' files."""
    alphas = symmetric_alphas(opts.max_sd, opts.steps)
    info("rendering faces along the health direction")
    mean_code = render_codes.mean(axis=0, keepdims=True)
    mean_edit = render_edits(generator, mean_code, direction, alphas, opts.batch)
    save_png(image_grid(mean_edit), tmp / "edit_mean.png")
    save_gif(mean_edit, tmp / "edit_mean.gif", scale=opts.gif_scale)
    pattern_edit = render_edits(generator, mean_code, pattern, alphas, opts.batch)
    save_png(image_grid(pattern_edit), tmp / "edit_pattern.png")
    chosen = choose_patients(ids, attributes["health_attribute"].to_numpy(), opts.patients, opts.n_patients)
    rows = np.array([np.flatnonzero(ids == pid)[0] for pid in chosen])
    patient_edit = render_edits(generator, render_codes[rows], direction, alphas, opts.batch)
    save_png(image_grid(patient_edit), tmp / "edit_patients.png")
    save_gif(patient_edit, tmp / "edit_patients.gif", scale=opts.gif_scale)
    return chosen, _write_recons(tmp / "recon", chosen, patient_edit[:, len(alphas) // 2])


@dataclass(frozen=True)
class _NuisanceFindings:
    """What the nuisance probes and the synthetic truth say about the direction (None: not measured)."""

    truth_correlations: dict[str, float] | None = None
    pattern_truth: dict[str, float] | None = None
    probes: Probes | None = None
    orthogonal: OrthogonalSummary | None = None
    cleaned: Any = None  # explain.nuisance's result: the direction made orthogonal to the probes


def _probe_nuisances(
    tmp: Path,
    codes: np.ndarray,
    ids: np.ndarray,
    attributes: pd.DataFrame,
    direction: HealthDirection,
    aligned_dir: str | Path | None,
    truth_csv: str | Path | None,
    opts: ExplainConfig,
) -> _NuisanceFindings:
    """Probe the codes for the nuisances measured in the photos and (synthetic world) the true factors;
    write nuisance.csv and the direction orthogonal to the probes."""
    found: list[tuple[str, Probe]] = []
    truth_correlations = pattern_truth = None
    if aligned_dir is not None:
        measured = measure_photo_nuisances(aligned_dir, ids.tolist())
        probed = probe_attributes(codes, measured, ids.tolist(), direction.vector, seed=opts.seed)
        found += [("photo", p) for p in probed]
    if truth_csv is not None:
        health, nuisance = truth_factors(truth_csv)
        truth_correlations = _correlations(attributes, health)
        pattern_table = attributes[["patient_id"]].assign(health_attribute=attributes["pattern_attribute"])
        pattern_truth = _correlations(pattern_table, health)
        probed = probe_attributes(codes, nuisance, ids.tolist(), direction.vector, seed=opts.seed)
        found += [("truth", p) for p in probed]
    if not found:
        return _NuisanceFindings(truth_correlations, pattern_truth)
    items = tuple(ProbeRow(s, p.name, p.r2_cv, p.cosine, p.n) for s, p in found)
    table = pd.DataFrame([item.to_json() for item in items])
    write_text_atomic(tmp / "nuisance.csv", safe_frame(table).to_csv(index=False, float_format="%.6g"))
    probes = Probes(" and ".join(sorted({item.source for item in items})), items)
    cleaned = orthogonal_to_nuisance(direction, [p for _, p in found], codes)
    if cleaned.direction is not None:
        np.save(tmp / "direction_orthogonal.npy", cleaned.direction.vector.astype(np.float32))
    return _NuisanceFindings(truth_correlations, pattern_truth, probes, cleaned.summary(), cleaned)


def _write_face_local(
    tmp: Path,
    generator: Any,
    subspace: FaceSubspace,
    direction: HealthDirection,
    codes: np.ndarray,
    mean_code: np.ndarray,
    opts: ExplainConfig,
) -> tuple[FaceSubspaceSummary, HealthDirection | None]:
    """Save the face subspace and the face-local direction (d projected onto it) with its edit."""
    save_face_subspace(tmp / "face_subspace.npz", subspace)
    local, cosine = localize(subspace, direction, codes)
    if local is not None:
        np.save(tmp / "direction_face_local.npy", local.vector.astype(np.float32))
        alphas = symmetric_alphas(opts.max_sd, opts.steps)
        save_png(
            image_grid(render_edits(generator, mean_code, local, alphas, opts.batch)), tmp / FACE_LOCAL_EDIT
        )
    return _subspace_summary(subspace, cosine), local


def _subspace_summary(subspace: FaceSubspace, cosine: float) -> FaceSubspaceSummary:
    """The face subspace's numbers and spectrum with the face-local direction's cosine with d."""
    return FaceSubspaceSummary(
        dim=subspace.dim,
        threshold=subspace.threshold,
        n_components=subspace.n_components,
        n_patients=subspace.n_patients,
        variance_share=subspace.variance_share,
        shares=tuple(float(s) for s in subspace.shares),
        cosine_with_d=cosine,
        definition=FACE_LOCAL_DEFINITION,
    )


def _with_shares(summary: SummaryT | None, shares: RegionShares | None) -> SummaryT | None:
    """``summary`` with where its direction's edit acts (None stays None)."""
    return None if summary is None else dataclasses.replace(summary, attribution=shares)


def _face_bound(bundle: Any) -> FaceBound | None:
    """How a face-bound bundle was restricted (directions kept, threshold); None for any other model."""
    restriction = getattr(bundle, "restriction", None)
    if restriction is None:
        return None
    found = getattr(bundle, "meta", {}).get("training", {}).get("face_subspace", {})
    return FaceBound(int(len(restriction.basis)), found.get("threshold"))


def _write_recons(folder: Path, chosen: list[str], images: np.ndarray) -> dict[str, str]:
    from PIL import Image

    written = {}
    for pid, image in zip(chosen, images, strict=True):
        path = patient_file(folder, pid)
        if path is None:
            warn(f"patient id {pid!r} cannot name a file; its reconstruction is not written")
            continue
        save_png(Image.fromarray(image), path)
        written[pid] = f"recon/{path.name}"
    return written


def attribution_rows(n_patients: int, opts: ExplainConfig) -> np.ndarray:
    """The seeded sample of patients whose image change the attribution measures (sorted row indices)."""
    rng = np.random.default_rng(opts.seed)
    return np.sort(rng.choice(n_patients, size=min(opts.attribution_patients, n_patients), replace=False))


def find_face_subspace(
    generator: Any, latents: Latents, shape: tuple[int, ...], aligned_dir: str | Path, opts: ExplainConfig
) -> FaceSubspace | None:
    """The face subspace of the codes in a direction's ``shape`` (W or W+), from the Jacobians at patients
    outside the attribution sample (so the face-local direction's shares are measured on other patients);
    None without masks."""
    aligned = Path(aligned_dir)
    if not (aligned / "masks").is_dir():
        return None
    codes = codes_in_space(latents, shape)
    ids = latents.patient_id
    masked = np.array([i for i, pid in enumerate(ids) if _has_mask(aligned, str(pid))], dtype=np.int64)
    if len(masked) == 0:
        warn(f"{aligned}/masks holds no patient's mask: the face subspace is skipped")
        return None
    rest = np.setdiff1d(masked, attribution_rows(len(ids), opts))
    pool = rest if len(rest) >= opts.face_patients else masked
    rng = np.random.default_rng(opts.seed + 1)
    rows = np.sort(rng.choice(pool, size=min(opts.face_patients, len(pool)), replace=False))
    size = min(int(generator.img_resolution), ANALYSIS_RESOLUTION)
    masks, _ = load_masks(aligned, ids[rows].tolist(), size)
    # the codes of N patients span at most N - 1 principal directions (the log says how many are searched)
    k = min(opts.face_components, len(codes) - 1, int(np.prod(codes.shape[1:])))
    info(f"finding the face subspace ({len(rows)} patients, {k} principal directions of {len(codes)} codes)")
    return face_subspace(generator, codes, masks, rows, opts.face_components, opts.face_threshold, opts.batch)


def _has_mask(aligned: Path, patient_id: str) -> bool:
    return mask_file(aligned, patient_id) is not None


def _attribution(
    generator: Any,
    codes: np.ndarray,
    ids: np.ndarray,
    direction: HealthDirection,
    aligned: Path,
    opts: ExplainConfig,
    others: dict[str, HealthDirection] | None = None,
) -> tuple[AttributionSummary, dict[str, RegionShares]] | None:
    """The attribution of the health direction and the region shares of ``others`` (same patients, same
    step in their own attribute SDs); None without masks."""
    if not (aligned / "masks").is_dir():
        warn(f"{aligned}/masks not found: the face/background/clothing attribution is skipped")
        return None
    rows = attribution_rows(len(ids), opts)
    masks, fallback = load_masks(aligned, ids[rows].tolist(), generator.img_resolution)
    info(
        f"measuring where the direction changes the image ({len(rows)} patients, "
        f"{opts.random_directions} random directions)"
    )
    result = attribute_regions(
        generator,
        codes[rows],
        direction,
        masks,
        opts.random_directions,
        opts.step_sd,
        opts.seed,
        opts.batch,
        fallback,
    )
    wide_face = face_with_margin(masks, result.margin_px)
    other_shares = {
        name: edit_shares(
            generator,
            codes[rows],
            opts.step_sd * other.scale * other.vector,
            masks,
            wide_face,
            batch=opts.batch,
        ).summary()
        for name, other in (others or {}).items()
    }
    return result.summary(), other_shares
