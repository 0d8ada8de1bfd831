"""`stylesurv explain` as a library call: direction, attribute, edited faces, attribution, nuisance probes.

Everything is written into one output folder, atomically (a killed run leaves the previous folder):

    health_attribute.csv      patient_id, health_attribute (+ health_<group> for W+ codes)
    edit_mean.png / .gif      the cohort-mean code moved along the direction (generated face, shareable)
    edit_patients.png / .gif  chosen patients moved along the direction (rows)
    recon/<patient_id>.png    the chosen patients' reconstructions (a = 0)
    attribution.png           energy shares per mask region (with --aligned)
    nuisance.csv              probe R^2 and cosine with the direction per attribute
    direction_orthogonal.npy  the direction with the nuisance probes' span projected out (with probes)
    direction_face_local.npy  the direction projected onto the face subspace (with --aligned; localize.py)
    edit_face_local.png       the mean face moved along the face-local direction
    face_subspace.npz         the face subspace itself (`stylesurv fit --face-subspace`: a face-bound model)
    summary.json              every number above, the inputs and the options

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
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stylesurv.config import NUISANCE_SOURCES
from stylesurv.console import info, warn
from stylesurv.errors import InputError
from stylesurv.explain.attribution import (
    attribute_regions,
    edit_shares,
    face_margin_px,
    face_with_margin,
    load_masks,
    patient_file,
)
from stylesurv.explain.counterfactual import DEFAULT_ENERGY, SWAPPED_REGIONS, counterfactual_basis
from stylesurv.explain.direction import (
    HealthDirection,
    codes_in_space,
    health_direction,
    pattern_direction,
)
from stylesurv.explain.edit import (
    broadcast_ws,
    image_grid,
    render_edits,
    save_gif,
    save_png,
    symmetric_alphas,
    synthesize,
)
from stylesurv.explain.localize import (
    ANALYSIS_RESOLUTION,
    CURVE_THRESHOLDS,
    DEFAULT_COMPONENTS,
    DEFAULT_PATIENTS,
    DEFAULT_THRESHOLD,
    FaceSubspace,
    face_subspace,
    save_face_subspace,
)
from stylesurv.explain.nuisance import (
    Probe,
    measure_photo_nuisances,
    nuisance_basis,
    orthogonal_to_nuisance,
    probe_attributes,
    project_out,
    truth_factors,
)
from stylesurv.invert.latents import Latents
from stylesurv.run import write_bytes_atomic, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from stylesurv.survival.data import CodeRestriction, FeatureSpec, SurvivalData
    from stylesurv.survival.models import ModelFactory


@dataclass
class ExplainOptions:
    """Knobs of the explain stage (all have defaults that suit a 64 px cohort on a CPU)."""

    max_sd: float = 3.0  # edits span -max_sd .. +max_sd attribute SDs
    steps: int = 7  # columns of the edit grids (odd, so a = 0 is one of them)
    patients: list[str] = field(default_factory=list)  # edited patients; empty: spread over the attribute
    n_patients: int = 4  # how many patients to edit when none are named
    attribution_patients: int = 64  # patients whose image change is measured (seeded sample)
    n_random: int = 8  # random directions of the attribution baseline
    step_sd: float = 1.0  # attribution step, in attribute SDs
    seed: int = 0
    batch: int = 16
    gif_scale: int = 2  # GIF pixels per image pixel
    face_components: int = DEFAULT_COMPONENTS  # principal directions searched for the face subspace
    face_patients: int = DEFAULT_PATIENTS  # patients whose Jacobians define the face subspace
    face_threshold: float = DEFAULT_THRESHOLD  # face share a direction needs to be in the face subspace

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


PATTERN_DEFINITION = (
    "-Cov(code, risk) over the cohort, unit length (Haufe et al. 2014): the direction along which the "
    "cohort's codes change as the model's risk falls, without the weight components that only cancel noise"
)
FACE_LOCAL_DEFINITION = (
    "the health direction projected onto the face subspace: the span of the codes' principal directions "
    "whose pooled image-change energy lies at least the threshold share inside the patients' face masks"
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
    options: ExplainOptions | None = None,
    inputs: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    subspace: FaceSubspace | None = None,
) -> dict[str, Any]:
    """Compute and write every explain output into ``out_dir``; return the summary that summary.json holds.

    ``bundle`` needs ``latent_direction()``; ``generator`` the Generator API (``synthesis``, ``num_ws``).
    ``extra`` is merged into the summary (e.g. the remove-nuisance evaluation).  ``subspace`` (from
    :func:`find_face_subspace`, which the caller also needs to refit the model on it) adds the face-local
    direction and its attribution.
    """
    from stylesurv.report.plots import attribution_figure
    from stylesurv.run import atomic_dir

    opts = options or ExplainOptions()
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
    summary: dict[str, Any] = {
        "inputs": inputs or {},
        "options": opts.to_json(),
        "n_patients": len(ids),
        "model": str(getattr(bundle, "model_name", "")),
        "adjusted_for": list(getattr(bundle, "adjusted_for", ())),
        "face_bound": _face_bound(bundle),
        "space": space,
        "direction": direction.to_json(),
        "pattern": {
            **pattern.to_json(),
            "cosine_with_d": float(pattern.vector.reshape(-1) @ direction.vector.reshape(-1)),
            "definition": PATTERN_DEFINITION,
        },
        "images": {},
    }
    with atomic_dir(out_dir) as tmp:
        write_text_atomic(tmp / "health_attribute.csv", attributes.to_csv(index=False, float_format="%.6g"))
        np.save(tmp / "direction.npy", direction.vector.astype(np.float32))

        alphas = symmetric_alphas(opts.max_sd, opts.steps)
        summary["alphas"] = alphas.tolist()
        info("rendering faces along the health direction")
        mean_code = render_codes.mean(axis=0, keepdims=True)
        mean_edit = render_edits(generator, mean_code, direction, alphas, opts.batch)
        save_png(image_grid(mean_edit), tmp / "edit_mean.png")
        save_gif(mean_edit, tmp / "edit_mean.gif", scale=opts.gif_scale)
        summary["images"].update(edit_mean="edit_mean.png", edit_mean_gif="edit_mean.gif")
        save_png(
            image_grid(render_edits(generator, mean_code, pattern, alphas, opts.batch)),
            tmp / "edit_pattern.png",
        )
        summary["images"]["edit_pattern"] = "edit_pattern.png"

        chosen = choose_patients(
            ids, attributes["health_attribute"].to_numpy(), opts.patients, opts.n_patients
        )
        rows = np.array([np.flatnonzero(ids == pid)[0] for pid in chosen])
        patient_edit = render_edits(generator, render_codes[rows], direction, alphas, opts.batch)
        save_png(image_grid(patient_edit), tmp / "edit_patients.png")
        save_gif(patient_edit, tmp / "edit_patients.gif", scale=opts.gif_scale)
        summary["images"].update(edit_patients="edit_patients.png", edit_patients_gif="edit_patients.gif")
        summary["patients"] = chosen
        summary["images"]["recon"] = _write_recons(tmp / "recon", chosen, patient_edit[:, len(alphas) // 2])

        probes: list[tuple[str, Probe]] = []
        if aligned_dir is not None:
            measured = measure_photo_nuisances(aligned_dir, ids.tolist())
            found = probe_attributes(codes, measured, ids.tolist(), direction.vector, seed=opts.seed)
            probes += [("photo", p) for p in found]
        if truth_csv is not None:
            health, nuisance = truth_factors(truth_csv)
            summary["truth_correlations"] = _correlations(attributes, health)
            pattern_table = attributes[["patient_id"]].assign(
                health_attribute=attributes["pattern_attribute"]
            )
            summary["pattern"]["truth_correlations"] = _correlations(pattern_table, health)
            found = probe_attributes(codes, nuisance, ids.tolist(), direction.vector, seed=opts.seed)
            probes += [("truth", p) for p in found]
        orthogonal = None
        if probes:
            table = pd.DataFrame([{"source": s, **p.to_json()} for s, p in probes])
            write_text_atomic(tmp / "nuisance.csv", table.to_csv(index=False, float_format="%.6g"))
            summary["probes"] = {
                "source": " and ".join(sorted({s for s, _ in probes})),
                "items": [{"source": s, **p.to_json()} for s, p in probes],
            }
            orthogonal = orthogonal_to_nuisance(direction, [p for _, p in probes], codes)
            summary["nuisance_orthogonal"] = orthogonal.to_json()
            if orthogonal.direction is not None:
                np.save(tmp / "direction_orthogonal.npy", orthogonal.direction.vector.astype(np.float32))
        if aligned_dir is not None:
            others = {"pattern": pattern}
            if orthogonal is not None and orthogonal.direction is not None:
                others["nuisance_orthogonal"] = orthogonal.direction
            if subspace is not None:
                save_face_subspace(tmp / "face_subspace.npz", subspace)
                local, cosine = subspace.localize(direction, codes)
                summary["face_subspace"] = {
                    **subspace.to_json(),
                    "cosine_with_d": cosine,
                    "definition": FACE_LOCAL_DEFINITION,
                }
                if local is not None:
                    others["face_local"] = local
                    np.save(tmp / "direction_face_local.npy", local.vector.astype(np.float32))
                    save_png(
                        image_grid(render_edits(generator, mean_code, local, alphas, opts.batch)),
                        tmp / "edit_face_local.png",
                    )
                    summary["images"]["edit_face_local"] = "edit_face_local.png"
            attribution = _attribution(
                generator, render_codes, ids, direction, Path(aligned_dir), opts, others
            )
            if attribution is not None:
                summary["attribution"], other_shares = attribution
                write_bytes_atomic(tmp / "attribution.png", attribution_figure(summary["attribution"]))
                summary["images"]["attribution"] = "attribution.png"
                summary["pattern"]["attribution"] = other_shares["pattern"]
                if "nuisance_orthogonal" in other_shares:
                    summary["nuisance_orthogonal"]["attribution"] = other_shares["nuisance_orthogonal"]
                if "face_local" in other_shares:
                    summary["face_subspace"]["attribution"] = other_shares["face_local"]
            else:
                summary["attribution"] = None
        summary.update(extra or {})
        write_json_atomic(tmp / "summary.json", summary)
    return summary


def _face_bound(bundle: Any) -> dict[str, Any] | None:
    """How a face-bound bundle was restricted (directions kept, threshold); None for any other model."""
    restriction = getattr(bundle, "restriction", None)
    if restriction is None:
        return None
    found = getattr(bundle, "meta", {}).get("training", {}).get("face_subspace", {})
    return {"dim": int(len(restriction.basis)), "threshold": found.get("threshold")}


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


def attribution_rows(n_patients: int, opts: ExplainOptions) -> np.ndarray:
    """The seeded sample of patients whose image change the attribution measures (sorted row indices)."""
    rng = np.random.default_rng(opts.seed)
    return np.sort(rng.choice(n_patients, size=min(opts.attribution_patients, n_patients), replace=False))


def find_face_subspace(
    generator: Any, latents: Latents, shape: tuple[int, ...], aligned_dir: str | Path, opts: ExplainOptions
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
    info(f"finding the face subspace ({len(rows)} patients, {opts.face_components} principal directions)")
    return face_subspace(generator, codes, masks, rows, opts.face_components, opts.face_threshold, opts.batch)


def _has_mask(aligned: Path, patient_id: str) -> bool:
    path = patient_file(aligned / "masks", patient_id)
    return path is not None and path.is_file()


def _attribution(
    generator: Any,
    codes: np.ndarray,
    ids: np.ndarray,
    direction: HealthDirection,
    aligned: Path,
    opts: ExplainOptions,
    others: dict[str, HealthDirection] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
    """The attribution of the health direction and the region shares of ``others`` (same patients, same
    step in their own attribute SDs); None without masks."""
    if not (aligned / "masks").is_dir():
        warn(f"{aligned}/masks not found: the face/background/clothing attribution is skipped")
        return None
    rows = attribution_rows(len(ids), opts)
    masks, fallback = load_masks(aligned, ids[rows].tolist(), generator.img_resolution)
    info(
        f"measuring where the direction changes the image ({len(rows)} patients, {opts.n_random} random "
        "directions)"
    )
    result = attribute_regions(
        generator, codes[rows], direction, masks, opts.n_random, opts.step_sd, opts.seed, opts.batch, fallback
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
        ).to_json()
        for name, other in (others or {}).items()
    }
    return result.to_json(), other_shares


# ------------------------------------------------------------------------------ held-out evaluation
def held_out_split(
    patient_ids: np.ndarray,
    event: np.ndarray,
    truth: pd.DataFrame | None,
    seed: int,
    test_ids: Collection[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Train and test row indices: the given ``test_ids``, else the synthetic world's own split column when
    there is one, else a seeded 70/30 split stratified by event."""
    if test_ids is not None:
        held = np.isin(patient_ids.astype(str), np.asarray(list(test_ids), dtype=str))
        if not held.any() or held.all():
            raise InputError("the held-out patients must be some, but not all, of the cohort's patients")
        return np.flatnonzero(~held), np.flatnonzero(held), "given held-out patients"
    if truth is not None and "split" in truth.columns:
        split = truth.set_index(truth["patient_id"].astype(str))["split"].reindex(patient_ids.tolist())
        train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
        if len(train) and len(test):
            return train, test, "truth.csv split column"
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(patient_ids))
    train, test = train_test_split(rows, test_size=0.3, random_state=seed, stratify=event.astype(int))
    return np.sort(train), np.sort(test), f"random 70/30 split stratified by event (seed {seed})"


@dataclass(frozen=True)
class RefitInputs:
    """What refitting a bundle's model on part of its cohort needs: its kind, its latent feature spec and
    the cohort's outcomes joined to the codes."""

    kind: str
    spec: FeatureSpec  # latent features, and the clinical covariates of a joint (adjusted) bundle
    data: SurvivalData
    options: dict[str, Any] = field(default_factory=dict)  # model options the bundle chose (CoxNet l1_ratio)
    restriction: CodeRestriction | None = None  # a face-bound bundle's subspace (data.codes are restricted)

    @property
    def factory(self) -> ModelFactory:
        """Fresh models like the bundle's: joint with the clinical adjusters when the spec has them."""
        from stylesurv.survival.models import ModelFactory

        return ModelFactory(self.kind, "joint" if self.spec.clinical else None, dict(self.options))


def refit_inputs(bundle_dir: str | Path, latents: Latents, cohort_dir: str | Path) -> RefitInputs:
    """The bundle's model kind and latent feature spec (with the clinical covariates it is adjusted for, if
    any; late-fusion covariates are dropped), with the codes joined to the cohort's outcomes; an InputError
    for a bundle that was not fitted on latent codes."""
    from stylesurv.survival.bundle import load_bundle
    from stylesurv.survival.data import LATENT_SPACES, FeatureSpec, join_latents, read_cohort_table
    from stylesurv.survival.models import IMAGE_KINDS

    bundle = load_bundle(bundle_dir)
    spec = FeatureSpec(
        space=bundle.spec.space,
        wplus_reduce=bundle.spec.wplus_reduce,
        layer_groups=bundle.spec.layer_groups,
        pca=bundle.spec.pca,
        clinical=bundle.adjusted_for,
    )
    if spec.space not in LATENT_SPACES:
        raise InputError(
            f"{bundle_dir}: refitting needs a model fitted on latent codes, not {bundle.model_name!r}"
        )
    kind = bundle.kind if bundle.kind in IMAGE_KINDS else "coxnet"
    params = bundle.meta.get("model", {}).get("params", {})
    options = {"l1_ratio": params["l1_ratio"]} if kind == "coxnet" and "l1_ratio" in params else {}
    table = read_cohort_table(cohort_dir)
    data = join_latents(latents, table, spec.space, spec.clinical)
    if bundle.restriction is not None:  # a face-bound bundle: refits see its restricted codes, as it did
        data = dataclasses.replace(data, codes=bundle.restriction.apply(data.codes))
    return RefitInputs(kind, spec, data, options, bundle.restriction)


def refit_and_score(
    inputs: RefitInputs,
    data: SurvivalData,
    train: np.ndarray,
    test: np.ndarray,
    health: pd.DataFrame | None,
    seed: int,
) -> dict[str, Any]:
    """Refit the model on the ``train`` rows of ``data``; Harrell's C on the ``test`` rows and, for a linear
    model with true health factors, the correlation of each factor with the held-out health attribute.

    The attribute is the projection of the held-out codes on the refitted model's health direction,
    standardised over the training codes, so nothing about the held-out patients enters it.  For a linear
    model, ``c_index_face`` is the C-index of its latent part alone (the face's share of the linear
    predictor; the same as ``c_index`` unless the model is adjusted for clinical covariates), and
    ``gradient`` its latent direction (the risk's gradient in code space).
    """
    from stylesurv.survival.bundle import SurvivalBundle
    from stylesurv.survival.metrics import harrell_c
    from stylesurv.survival.validation import fit_all

    with warnings.catch_warnings():
        # A refit on a narrow part of the codes (a strict face subspace) may keep no coefficient: a valid
        # answer (no latent direction, checked below), not something to warn the user about.
        warnings.filterwarnings("ignore", message="all coefficients are zero")
        pipeline, model = fit_all(data.subset(train), inputs.spec, inputs.factory, seed)
    test_data = data.subset(test)
    risk = model.predict(pipeline.transform(test_data))
    result: dict[str, Any] = {"c_index": harrell_c(test_data.time, test_data.event, risk)}
    if not model.is_linear:
        return result
    gradient = SurvivalBundle(
        inputs.kind, pipeline, model, 0.0, 1.0, {}, inputs.restriction
    ).latent_direction()
    face_risk = np.asarray(test_data.codes).reshape(len(test), -1) @ gradient.reshape(-1)
    result["c_index_face"] = harrell_c(test_data.time, test_data.event, face_risk)
    result["gradient"] = gradient
    if health is not None and np.any(gradient):  # a model that kept no latent feature has no direction
        for key, make in (("correlations", health_direction), ("pattern_correlations", pattern_direction)):
            direction = make(gradient, data.codes[train])
            attribute = pd.DataFrame(
                {"patient_id": test_data.patient_id, "health_attribute": direction.attribute(test_data.codes)}
            )
            result[key] = _correlations(attribute, health)
    return result


def _truth_tables(truth_csv: str | Path | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(health factors, whole truth table) of a synthetic world's truth.csv, or (None, None)."""
    if truth_csv is None:
        return None, None
    health, _ = truth_factors(truth_csv)
    return health, pd.read_csv(truth_csv, dtype={"patient_id": str})


def held_out_health(
    bundle_dir: str | Path,
    latents: Latents,
    cohort_dir: str | Path,
    truth_csv: str | Path,
    seed: int = 0,
    test_ids: Collection[str] | None = None,
) -> dict[str, Any]:
    """How well a health direction found on training patients generalises: the bundle's model refitted on
    the training split, its Harrell's C on the held-out patients and the correlation of their health
    attribute with each of the synthetic world's true health factors (lp_face: the true facial risk).

    The split is ``test_ids`` when given, else the truth's split column, else a seeded 70/30 split.
    """
    inputs = refit_inputs(bundle_dir, latents, cohort_dir)
    health, truth = _truth_tables(truth_csv)
    train, test, split_name = held_out_split(inputs.data.patient_id, inputs.data.event, truth, seed, test_ids)
    info(f"refitting {inputs.kind} on {len(train)} training patients, evaluating on {len(test)} held out")
    scored = refit_and_score(inputs, inputs.data, train, test, health, seed)
    return {
        "model": inputs.kind,
        "split": split_name,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "c_index_test": scored["c_index"],
        "c_index_face_test": scored.get("c_index_face"),
        "correlations": scored.get("correlations", {}),
        "pattern_correlations": scored.get("pattern_correlations", {}),
    }


# ------------------------------------------------------------------------------------- nuisance removal
def remove_nuisance_evaluation(
    bundle_dir: str | Path,
    latents: Latents,
    cohort_dir: str | Path,
    aligned_dir: str | Path | None,
    truth_csv: str | Path | None,
    seed: int = 0,
    source: str | None = None,
    test_ids: Collection[str] | None = None,
    swapped: Latents | None = None,
    counterfactual_energy: float = DEFAULT_ENERGY,
) -> dict[str, Any]:
    """Held-out C-index of the bundle's model refitted on plain codes and on codes with nuisance removed.

    The nuisance directions are found on the training patients only (ridge probes of the truth's nuisance
    factors, or of the attributes measured in the aligned photos: ``source`` "truth" or "photo", by default
    the truth when there is one), then removed from every code.  With the synthetic world's truth, it also
    reports how well each refitted model's health attribute tracks the true facial linear predictor on the
    held-out patients.  The split is as in :func:`held_out_split`.  Source "counterfactual": the
    principal directions holding ``counterfactual_energy`` of the code changes between ``latents`` and
    ``swapped`` (the same photos with background and clothing recoloured, embedded alike:
    `explain.counterfactual`), training patients only.
    """
    source = source or ("truth" if truth_csv is not None else "photo")
    if source not in NUISANCE_SOURCES:
        raise InputError(f"the nuisance source must be one of {', '.join(NUISANCE_SOURCES)}, got {source!r}")
    if source == "counterfactual" and swapped is None:
        raise InputError("counterfactual nuisance directions need the codes of the recoloured photos")
    if source == "truth" and truth_csv is None:
        raise InputError("nuisance directions from the truth need the synthetic world's truth.csv (--truth)")
    if source == "photo" and aligned_dir is None:
        raise InputError("nuisance directions measured in the photos need the aligned folder (--aligned)")
    inputs = refit_inputs(bundle_dir, latents, cohort_dir)
    data = inputs.data
    ids = data.patient_id
    health, truth = _truth_tables(truth_csv)
    train, test, split_name = held_out_split(ids, data.event, truth, seed, test_ids)
    codes = np.asarray(data.codes, dtype=np.float64)
    if source == "counterfactual":
        assert swapped is not None
        train_ids = [str(pid) for pid in ids[train]]
        within = None if inputs.restriction is None else inputs.restriction.basis
        basis = counterfactual_basis(
            latents, swapped, inputs.spec.space, train_ids, counterfactual_energy, within
        )
        names = [f"counterfactual recolouring ({', '.join(SWAPPED_REGIONS)})"]
    else:
        if source == "truth":
            assert truth_csv is not None
            targets = truth_factors(truth_csv)[1]
        else:
            assert aligned_dir is not None
            targets = measure_photo_nuisances(aligned_dir, ids.tolist())
        targets = targets.set_index(targets["patient_id"].astype(str)).reindex(ids.tolist())
        targets = targets.drop(columns="patient_id")
        basis = nuisance_basis(codes[train], targets.iloc[train], seed=seed)
        names = list(targets.columns)
    cleaned = dataclasses.replace(data, codes=project_out(codes, basis))
    result: dict[str, Any] = {
        "model": inputs.kind,
        "split": split_name,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "nuisance_source": source,
        "nuisances": names,
        "n_directions": int(len(basis)),
    }
    for label, variant in (("plain", data), ("removed", cleaned)):
        info(f"refitting {inputs.kind} on the training split ({label} codes)")
        scored = refit_and_score(inputs, variant, train, test, health, seed)
        result.update(_refit_fields(scored, label, "c_index_face"))
    return result


def _refit_fields(scored: dict[str, Any], label: str, latent_key: str) -> dict[str, float]:
    """One refit's held-out C, latent-part C (named ``latent_key``), r with lp_face and measured face
    shares, suffixed by ``_label`` (bare names for an empty label)."""
    suffix = f"_{label}" if label else ""
    out = {f"c_index{suffix}": scored["c_index"]}
    if "c_index_face" in scored:
        out[f"{latent_key}{suffix}"] = scored["c_index_face"]
    if "lp_face" in scored.get("correlations", {}):
        out[f"r_lp_face{suffix}"] = scored["correlations"]["lp_face"]
    for key in ("face_share", "face_share_with_margin"):
        if key in scored:
            out[f"{key}{suffix}"] = scored[key]
    return out


def face_share_meter(
    generator: Any, latents: Latents, shape: tuple[int, ...], aligned_dir: str | Path, opts: ExplainOptions
) -> Callable[[np.ndarray], dict[str, float]] | None:
    """A function measuring where an edit along a latent gradient (``shape``, as the bundle's) changes the
    image: the mean face share and face-with-margin share on the attribution sample, with the step of the
    attribution (``opts.step_sd`` SDs of the direction's attribute over the cohort), so that its numbers
    compare with d's.  None without masks."""
    aligned = Path(aligned_dir)
    if not (aligned / "masks").is_dir():
        return None
    ids = latents.patient_id
    rows = attribution_rows(len(ids), opts)
    masks, _ = load_masks(aligned, ids[rows].tolist(), generator.img_resolution)
    wide = face_with_margin(masks, face_margin_px(masks.shape[-1]))
    codes = codes_in_space(latents, shape)
    render_codes = (latents.wplus if latents.wplus is not None else codes)[rows]
    base = synthesize(generator, broadcast_ws(render_codes, generator.num_ws), opts.batch)

    def measure(gradient: np.ndarray) -> dict[str, float]:
        direction = health_direction(np.asarray(gradient).reshape(shape), codes)
        offset = opts.step_sd * direction.scale * direction.vector
        shares = edit_shares(generator, render_codes, offset, masks, wide, base=base, batch=opts.batch)
        return {
            "face_share": float(shares.mean["face"]),
            "face_share_with_margin": float(shares.mean_face_margin),
        }

    return measure


def face_subspace_evaluation(
    bundle_dir: str | Path,
    latents: Latents,
    cohort_dir: str | Path,
    subspace: FaceSubspace,
    truth_csv: str | Path | None = None,
    seed: int = 0,
    test_ids: Collection[str] | None = None,
    meter: Callable[[np.ndarray], dict[str, float]] | None = None,
    thresholds: Sequence[float] = CURVE_THRESHOLDS,
) -> dict[str, Any]:
    """Held-out C-index of the bundle's model refitted on all of the codes, on the codes restricted to the
    face subspace, and on the codes without it (the orthogonal complement: background, clothing, hair and
    whatever the generator entangles with them).  If the face subspace keeps the C-index, the model's signal
    is in the face.  With a synthetic world's truth, also the held-out correlation of each refitted model's
    health attribute with the true facial risk.  The split is as in :func:`held_out_split`.

    ``curve`` repeats the face-subspace refit at each of ``thresholds`` (and the subspace's own): the price
    in C-index of a model whose edits stay in the face.  ``meter`` (:func:`face_share_meter`) adds, per
    refit, the measured face share of its health direction.
    """
    inputs = refit_inputs(bundle_dir, latents, cohort_dir)
    data = inputs.data
    health, truth = _truth_tables(truth_csv)
    train, test, split_name = held_out_split(data.patient_id, data.event, truth, seed, test_ids)
    codes = np.asarray(data.codes, dtype=np.float64)
    if codes.reshape(len(codes), -1).shape[1] != subspace.center.shape[0]:
        raise InputError("the face subspace was found in another latent space than the model's codes")
    result: dict[str, Any] = {
        "model": inputs.kind,
        "split": split_name,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "dim": subspace.dim,
    }

    def refit(name: str, variant: np.ndarray, part: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
        """Refit on ``variant`` codes; the face share is measured along ``part`` of the gradient: the codes
        vary only there, so the rest of it (what standardising each coordinate adds) changes no prediction
        but would move the edit out of the variant's span."""
        info(f"refitting {inputs.kind} on the training split ({name})")
        scored = refit_and_score(inputs, dataclasses.replace(data, codes=variant), train, test, health, seed)
        if meter is not None and "gradient" in scored:
            gradient = part(scored["gradient"])
            if np.any(gradient):
                scored.update(meter(gradient))
        return scored

    curve = []
    for threshold in sorted({*thresholds, subspace.threshold}):
        cut = subspace.at(threshold)
        if cut.dim == 0:
            continue
        scored = refit(f"the face subspace at {threshold:g}", cut.restrict(codes), cut.project)
        curve.append({"threshold": threshold, "dim": cut.dim, **_refit_fields(scored, "", "c_index_latent")})
        if threshold == subspace.threshold:
            result.update(_refit_fields(scored, "face", "c_index_latent"))
    rest = subspace.remove(codes)
    whole = refit("all of the codes", codes, lambda g: g)
    result.update(_refit_fields(whole, "all", "c_index_latent"))
    outside = refit("the codes without the face subspace", rest, lambda g: g - subspace.project(g))
    result.update(_refit_fields(outside, "rest", "c_index_latent"))
    result["curve"] = curve
    return result
