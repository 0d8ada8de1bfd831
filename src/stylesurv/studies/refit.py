"""Held-out refit studies of a fitted model: refitted on a training split with the codes as they are, with
nuisance directions removed, or kept to (or out of) the face subspace, and scored on the held-out patients.

The studies take loaded objects (the bundle, the codes, the outcomes), never paths, so a caller that holds
them loads nothing twice.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stylesurv.core.aligned import load_masks
from stylesurv.core.console import info
from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.explain.attribution import edit_shares, face_margin_px, face_with_margin
from stylesurv.explain.config import NUISANCE_SOURCES, ExplainConfig
from stylesurv.explain.direction import codes_in_space, health_direction, pattern_direction
from stylesurv.explain.nuisance import measure_photo_nuisances, nuisance_basis, project_out, truth_factors
from stylesurv.explain.outputs import _correlations, attribution_rows
from stylesurv.gan.face_subspace import CURVE_THRESHOLDS, CodeRestriction, FaceSubspace
from stylesurv.gan.protocol import GeneratorLike
from stylesurv.gan.render import broadcast_ws, synthesize
from stylesurv.studies.counterfactual import DEFAULT_ENERGY, SWAPPED_REGIONS, counterfactual_basis
from stylesurv.survival.bundle import SurvivalBundle
from stylesurv.survival.data import FeatureSpec, SurvivalData
from stylesurv.survival.registry import ModelFactory


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
        return ModelFactory(self.kind, "joint" if self.spec.clinical else None, dict(self.options))


def refit_inputs(bundle: SurvivalBundle, latents: Latents, table: pd.DataFrame) -> RefitInputs:
    """The bundle's model kind and latent feature spec (with the clinical covariates it is adjusted for, if
    any; late-fusion covariates are dropped), with the codes joined to the cohort's outcomes; an InputError
    for a bundle that was not fitted on latent codes."""
    from stylesurv.survival.data import LATENT_SPACES, FeatureSpec, join_latents
    from stylesurv.survival.registry import LATENT_KINDS

    spec = FeatureSpec(
        space=bundle.spec.space,
        wplus_reduce=bundle.spec.wplus_reduce,
        layer_groups=bundle.spec.layer_groups,
        pca=bundle.spec.pca,
        clinical=bundle.adjusted_for,
    )
    if spec.space not in LATENT_SPACES:
        raise InputError(f"refitting needs a model fitted on latent codes, not {bundle.model_name!r}")
    kind = bundle.kind if bundle.kind in LATENT_KINDS else "coxnet"
    params = bundle.meta.get("model", {}).get("params", {})
    options = {"l1_ratio": params["l1_ratio"]} if kind == "coxnet" and "l1_ratio" in params else {}
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
    bundle: SurvivalBundle,
    latents: Latents,
    table: pd.DataFrame,
    truth_csv: str | Path,
    seed: int = 0,
    test_ids: Collection[str] | None = None,
) -> dict[str, Any]:
    """How well a health direction found on training patients generalises: the bundle's model refitted on
    the training split, its Harrell's C on the held-out patients and the correlation of their health
    attribute with each of the synthetic world's true health factors (lp_face: the true facial risk).

    The split is ``test_ids`` when given, else the truth's split column, else a seeded 70/30 split.
    """
    inputs = refit_inputs(bundle, latents, table)
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
    bundle: SurvivalBundle,
    latents: Latents,
    table: pd.DataFrame,
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
    inputs = refit_inputs(bundle, latents, table)
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
    generator: GeneratorLike,
    latents: Latents,
    shape: tuple[int, ...],
    aligned_dir: str | Path,
    opts: ExplainConfig,
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
    bundle: SurvivalBundle,
    latents: Latents,
    table: pd.DataFrame,
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
    inputs = refit_inputs(bundle, latents, table)
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
