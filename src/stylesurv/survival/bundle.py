"""Survival model bundles: what ``stylesurv fit`` writes, and :func:`load_bundle` to predict with one.

A bundle is a folder (written atomically as a whole)::

    model.json          JSON, everything but large arrays:
                          format "stylesurv-survival-bundle", format_version 1, stylesurv version
                          model_name   e.g. "coxnet", "coxnet+clinical" (late fusion), "coxnet|clinical"
                                       (joint: adjusted for the clinical covariates) or "clinical"
                          features     the feature pipeline: spec (space w|wplus|none|image, W+ reduction,
                                       PCA components k, clinical columns), latent code shape, clinical
                                       imputation/standardisation values and category levels, feature names
                          model        the fitted model: kind, chosen hyperparameters, for linear kinds
                                       the coefficients and (coxph) the hazard-ratio table with 95 % CIs;
                                       nested "image" and "cox" parts for late fusion
                          risk_mean, risk_sd   training distribution of the risk (health attribute scale)
                          training     patients, events, seed, latents file hash
    arrays.safetensors  float/int arrays, named "features.<name>" and "model.<name>":
                          features.latent_mean / latent_scale [d]       standardisation of the reduced code
                          features.pca_components [k, d], features.pca_score_scale [k]   (if PCA)
                          model.coef [p]                                linear Cox coefficients
                          model.baseline_time / baseline_cumhaz [m]    Breslow cumulative baseline hazard
                          model.net.<param>                             DeepSurv / CNN weights
                          model.trees.*                                 RSF / GBSA trees as node arrays
    cv_results.json     the nested CV (validation.CVResults.to_dict; read back by load_cv_results)
    oof_risk.csv        patient_id, time, event, repeat, fold, risk: out-of-fold risk per outer repeat

No file of a bundle is a pickle, for any model kind.  Random survival forests and boosted Cox trees, which
scikit-survival only persists by pickling, are stored as their node arrays (children, split feature and
threshold, leaf values) and evaluated by a small numpy tree walker that matches scikit-survival's
predictions; loading a bundle therefore reads JSON and tensors and never executes code.

Risk is the log relative hazard for Cox-family models (higher = worse prognosis).  For models with a
linear latent part, ``latent_direction()`` is d risk / d code; the health attribute is the signed distance of
a code from the training mean along the unit health direction ``-latent_direction() / |latent_direction()|``
(latent units, higher = healthier).  For non-linear models it is the standardised negative risk.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stylesurv import __version__
from stylesurv.core.atomic import atomic_dir, write_json_atomic, write_safetensors_atomic, write_text_atomic
from stylesurv.core.config import FieldNames
from stylesurv.core.csvcells import safe_frame
from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.gan.face_subspace import CodeRestriction
from stylesurv.survival.config import FitConfig
from stylesurv.survival.data import LATENT_SPACES, FeaturePipeline, FeatureSpec, SurvivalData
from stylesurv.survival.models import LateFusion, LinearCox, SurvivalModel
from stylesurv.survival.registry import FIT_KINDS, JOINT_KINDS, KINDS, ModelFactory, restore_model
from stylesurv.survival.validation import CVResults, cross_validate, fit_all

FORMAT = "stylesurv-survival-bundle"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
ARRAYS = "arrays.safetensors"
CV_RESULTS = "cv_results.json"
OOF_RISK = "oof_risk.csv"
MODELS = FIT_KINDS  # what `stylesurv fit --model` takes (registry.KINDS: selectable)
FUSIONS = ("late", "joint")  # how an image model takes clinical covariates


@dataclass
class SurvivalBundle:
    """A fitted feature pipeline and model, ready to score new latent codes."""

    model_name: str
    pipeline: FeaturePipeline
    model: SurvivalModel
    risk_mean: float
    risk_sd: float
    meta: dict[str, Any]
    restriction: CodeRestriction | None = None  # a face-bound model: codes kept to the face subspace

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def spec(self) -> FeatureSpec:
        return self.pipeline.spec

    @property
    def adjusted_for(self) -> tuple[str, ...]:
        """Clinical covariates fitted jointly with the latent features (so the latent coefficients are
        adjusted for them); empty for latent-only, late-fusion and clinical-only bundles."""
        joint = self.spec.space in LATENT_SPACES and isinstance(self.model, LinearCox)
        return self.spec.clinical if joint else ()

    def _data(
        self, latents: Latents | None, clinical: pd.DataFrame | None, images: np.ndarray | None
    ) -> SurvivalData:
        spec = self.spec
        if spec.space in LATENT_SPACES and latents is None:
            raise InputError(f"this {self.model_name} bundle needs latent codes")
        if spec.space == "image" and images is None:
            raise InputError("this CNN bundle scores aligned photos: pass images [N, 3, R, R] in [-1, 1]")
        if latents is not None:
            ids = latents.patient_id
        elif clinical is not None:
            ids = clinical["patient_id"].astype(str).to_numpy()
        else:
            ids = np.array([str(i) for i in range(len(images))])  # type: ignore[arg-type]
        frame = pd.DataFrame(index=range(len(ids)))
        if spec.clinical:
            if clinical is None:
                raise InputError(
                    f"this bundle uses clinical covariates {', '.join(spec.clinical)}; pass `clinical`"
                )
            table = clinical.assign(patient_id=clinical["patient_id"].astype(str)).set_index("patient_id")
            missing = [pid for pid in ids if pid not in table.index]
            if missing:
                raise InputError(f"no clinical covariates for patient(s) {', '.join(missing[:5])}")
            frame = table.loc[list(ids), list(spec.clinical)].reset_index(drop=True)
        codes = self.codes(latents) if latents is not None and spec.space in LATENT_SPACES else None
        return SurvivalData(
            patient_id=ids,
            time=np.ones(len(ids)),
            event=np.zeros(len(ids), bool),
            codes=codes,
            clinical=frame,
            images=images,
        )

    def predict(
        self, latents: Latents | None, clinical: pd.DataFrame | None = None, images: np.ndarray | None = None
    ) -> np.ndarray:
        """Risk (log relative hazard for Cox-family models) per patient, in the order of ``latents``."""
        return self.model.predict(self.pipeline.transform(self._data(latents, clinical, images)))

    def predict_survival_function(
        self,
        latents: Latents | None,
        times: np.ndarray | None = None,
        clinical: pd.DataFrame | None = None,
        images: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """S(t | patient): rows are patients (index patient_id), columns the times (days).

        Default times: the training event times at which the stored baseline hazard steps.
        """
        data = self._data(latents, clinical, images)
        if times is None:
            times = self.event_times()
        times = np.asarray(times, dtype=np.float64)
        survival = self.model.predict_survival_function(self.pipeline.transform(data), times)
        return pd.DataFrame(survival, index=pd.Index(data.patient_id, name="patient_id"), columns=times)

    def codes(self, latents: Latents) -> np.ndarray:
        """The latents' codes as the model sees them: in its space, restricted when it is face-bound."""
        codes = latents.codes(self.spec.space)
        return codes if self.restriction is None else self.restriction.apply(codes)

    def event_times(self) -> np.ndarray:
        model = self.model
        if isinstance(model, LateFusion):
            assert model.cox_ is not None
            return model.cox_.baseline_time_
        if hasattr(model, "event_times_"):
            return np.asarray(model.event_times_)
        return model.baseline_time_

    def _latent_coef(self) -> np.ndarray:
        """Coefficients of the linear predictor on the latent feature block."""
        if self.spec.space not in LATENT_SPACES or not self.model.is_linear:
            raise InputError(
                f"a {self.model_name} bundle has no linear latent direction; fit coxnet or coxph (optionally "
                "with --clinical) for one"
            )
        if isinstance(self.model, LateFusion):
            return self.model.image_coef()
        assert isinstance(self.model, LinearCox)
        return self.model.coef_[: self.pipeline.n_latent_features]

    def latent_direction(self) -> np.ndarray:
        """d risk / d latent code: shape [w_dim] for W bundles, [num_ws, w_dim] for W+ bundles.

        The Cox coefficients mapped back through PCA and standardisation; ``-d / |d|`` is the unit health
        direction.  Only for linear Cox-family bundles (coxnet, coxph, and their late fusion).
        """
        gradient = self.pipeline.latent_gradient(self._latent_coef())
        # A face-bound model's codes vary only in its subspace: the rest of the gradient predicts nothing
        # and an edit along it would leave the subspace.
        return gradient if self.restriction is None else self.restriction.project(gradient)

    def health_attribute(self, latents: Latents) -> np.ndarray:
        """Per patient: how healthy the face looks to the model (higher = healthier); see the module doc."""
        if self.spec.space in LATENT_SPACES and self.model.is_linear:
            coef = self._latent_coef()
            norm = float(np.linalg.norm(self.pipeline.latent_gradient(coef)))
            latent_risk = self.pipeline.latent_features(self.codes(latents)) @ coef
            return -latent_risk / (norm if norm > 0 else 1.0)
        if self.spec.space == "none":
            raise InputError("a clinical-only bundle has no health attribute of the face")
        if isinstance(self.model, LateFusion):
            assert self.model.image_ is not None
            risk = self.model.image_.predict(self.pipeline.latent_features(self.codes(latents)))
            return -(risk - self.model.score_mean_) / self.model.score_scale_
        return -(self.predict(latents) - self.risk_mean) / self.risk_sd


# ------------------------------------------------------------------------------------------- save / load
def save_bundle(
    out: Path,
    pipeline: FeaturePipeline,
    model: SurvivalModel,
    model_name: str,
    data: SurvivalData,
    extra: dict[str, Any],
    restriction: CodeRestriction | None = None,
) -> None:
    """Write model.json and arrays.safetensors for a pipeline + model fitted on ``data`` (restricted codes
    for a face-bound model, whose ``restriction`` is stored with it) into ``out``."""
    features_config, features_arrays = pipeline.export()
    model_config, model_arrays = model.export()
    train_risk = model.predict(pipeline.transform(data))
    arrays = {f"features.{k}": v for k, v in features_arrays.items()} | {
        f"model.{k}": v for k, v in model_arrays.items()
    }
    if restriction is not None:
        arrays |= {"restriction.center": restriction.center, "restriction.basis": restriction.basis}
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "stylesurv": __version__,
        "model_name": model_name,
        "features": features_config,
        "model": model_config,
        "risk_mean": float(train_risk.mean()),
        "risk_sd": float(train_risk.std()) if train_risk.std() > 0 else 1.0,
        "training": {"n_patients": len(data), "n_events": int(data.event.sum()), **extra},
        "arrays": ARRAYS,
        "cv_results": CV_RESULTS,
    }
    write_safetensors_atomic(out / ARRAYS, arrays, {"format": FORMAT})
    write_json_atomic(out / MODEL_JSON, doc)


def load_bundle(path: str | os.PathLike[str]) -> SurvivalBundle:
    """Read a bundle folder written by ``stylesurv fit`` (JSON + safetensors; nothing is unpickled)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    try:
        doc = json.loads((path / MODEL_JSON).read_text())
        arrays = load_file(str(path / ARRAYS))
    except FileNotFoundError:
        raise InputError(
            f"{path}: not a survival bundle (needs {MODEL_JSON} and {ARRAYS}); run `stylesurv fit`"
        ) from None
    except (ValueError, OSError, SafetensorError) as exc:
        raise InputError(
            f"{path}: unreadable survival bundle ({exc}); fit it again (`stylesurv fit`)"
        ) from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: {MODEL_JSON} is not a JSON object; fit it again (`stylesurv fit`)")
    if doc.get("format") != FORMAT or int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(f"{path}: not a stylesurv survival bundle of a supported version")

    def part(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    restricted = part("restriction.")
    return SurvivalBundle(
        model_name=doc["model_name"],
        pipeline=FeaturePipeline.restore(doc["features"], part("features.")),
        model=restore_model(doc["model"], part("model.")),
        risk_mean=float(doc["risk_mean"]),
        risk_sd=float(doc["risk_sd"]),
        meta=doc,
        restriction=CodeRestriction(restricted["center"], restricted["basis"]) if restricted else None,
    )


def load_cv_results(path: str | os.PathLike[str]) -> CVResults:
    """The nested CV of a bundle folder: its cv_results.json with the out-of-fold risks of oof_risk.csv
    (an empty table when that file is missing); equal to what ``fit_bundle`` returned."""
    path = Path(path)
    try:
        doc = json.loads((path / CV_RESULTS).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no {CV_RESULTS}; run `stylesurv fit`") from None
    except (ValueError, OSError) as exc:
        raise InputError(f"{path / CV_RESULTS}: unreadable ({exc})") from None
    oof_file = path / OOF_RISK
    oof = None
    if oof_file.is_file():
        oof = pd.read_csv(oof_file, dtype={"patient_id": str}, float_precision="round_trip")
    try:
        return CVResults.from_json(doc, oof)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path / CV_RESULTS}: not the result of a nested CV ({exc!r})") from None


# ------------------------------------------------------------------------------------------------ fitting
def fit_bundle(
    data: SurvivalData,
    spec: FeatureSpec,
    factory: ModelFactory,
    out: str | os.PathLike[str],
    folds: int = 5,
    repeats: int = 1,
    seed: int = 0,
    n_permutations: int = 0,
    extra: dict[str, Any] | None = None,
    auc_times: np.ndarray | None = None,
    tau: float | None = None,
    restriction: CodeRestriction | None = None,
) -> tuple[CVResults, SurvivalBundle]:
    """Nested CV, then a refit on all patients; writes the folder ``out`` atomically and loads it back.

    With a ``restriction`` (found without outcomes), every fold and the final model see the restricted codes
    and the bundle keeps the restriction, so that it scores new codes the same way: a face-bound model.
    """
    if restriction is not None:
        if data.codes is None:
            raise InputError("a code restriction needs a model on latent codes")
        data = dataclasses.replace(data, codes=restriction.apply(data.codes))
    name = {None: factory.kind, "clinical": "clinical", "joint": f"{factory.kind}|clinical"}.get(
        factory.clinical_kind, f"{factory.kind}+clinical"
    )
    options = {"folds": folds, "repeats": repeats, "seed": seed, "n_permutations": n_permutations}
    results = cross_validate(data, spec, factory, name, auc_times=auc_times, tau=tau, **options)
    pipeline, model = fit_all(data, spec, factory, seed)
    out = Path(out)
    with atomic_dir(out) as tmp:
        write_text_atomic(tmp / CV_RESULTS, results.to_json() + "\n")
        write_text_atomic(tmp / OOF_RISK, safe_frame(results.oof).to_csv(index=False))
        save_bundle(
            tmp,
            pipeline,
            model,
            name,
            data,
            {"seed": seed, "folds": folds, "repeats": repeats, **(extra or {})},
            restriction,
        )
    return results, load_bundle(out)


def fit_files(
    cohort: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: str = "coxnet",
    config: FitConfig | None = None,
    fusion: str = "late",
    latents: str | os.PathLike[str] | None = None,
    aligned: str | os.PathLike[str] | None = None,
    generator: str | os.PathLike[str] | None = None,
    face_subspace: str | os.PathLike[str] | None = None,
    names: Mapping[str, str] | None = None,
) -> tuple[CVResults, SurvivalBundle]:
    """What ``stylesurv fit`` does, from files: read the cohort (and latents or photos), CV, write the bundle.

    ``model``: one of MODELS (registry.FIT_KINDS); "clinical" is a Cox model on ``config.clinical`` alone; an
    image model with clinical covariates becomes late fusion (``fusion`` "late") or, for the JOINT_KINDS
    (coxnet, coxph), one Cox model on the codes and the covariates together with the covariates unpenalised
    (``fusion`` "joint": the latent coefficients, and so the health direction, are adjusted for them).
    ``config`` (:class:`~stylesurv.survival.config.FitConfig`) says how: features, CV, permutations.  Its
    "styles" space fits on the StyleSpace channels, which ``generator`` computes from the codes (else the
    latents' own).  ``face_subspace`` (a face_subspace.npz found in the same latent space, cut at
    ``config.face_threshold`` when given) makes the model face-bound: fitted on codes kept to that subspace.
    Errors name the config's fields as ``names`` calls them (a command passes its flags).
    """
    from stylesurv.core.console import info
    from stylesurv.core.hashing import sha256_file
    from stylesurv.core.latents import load_latents
    from stylesurv.survival.data import join_latents, read_cohort_table

    config = (config or FitConfig()).validate(names)
    name = FieldNames("fit", names)
    clinical = tuple(config.clinical)
    if model not in MODELS:
        raise InputError(f"{name('model')} must be one of {', '.join(MODELS)}, got {model!r}")
    if fusion not in FUSIONS:
        raise InputError(f"{name('fusion')} must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if fusion == "joint" and (model not in JOINT_KINDS or not clinical):
        raise InputError(
            f"{name('fusion')} joint adjusts a linear Cox model ({', '.join(JOINT_KINDS)}) for clinical "
            f"covariates: give one of them and {name('clinical')} (got {model}"
            + (")" if clinical else f", no {name('clinical')})")
        )
    kind = KINDS[model]
    table = read_cohort_table(cohort)
    extra: dict[str, Any] = {"cohort": str(cohort)}
    restriction = None
    if face_subspace is not None and kind.inputs != "latent":
        raise InputError(f"{name('face_subspace')} restricts latent codes; the {model} model has none")
    if kind.inputs == "clinical":
        spec = FeatureSpec(space="none", clinical=clinical)
        factory = ModelFactory(kind="coxph", clinical_kind="clinical")
        data = join_latents(None, table, "none", clinical)
    elif kind.inputs == "image":
        from stylesurv.survival.cnn import load_aligned_images

        if aligned is None:
            raise InputError(f"the cnn model trains on the aligned photos: give {name('aligned')}")
        if clinical:
            raise InputError("the CNN baseline is image-only; fuse clinical data with a latent model instead")
        spec = FeatureSpec(space="image")
        factory = ModelFactory(kind="cnn")
        data = load_aligned_images(join_latents(None, table, "none", ()), aligned)
        extra["aligned"] = str(aligned)
    else:
        if latents is None:
            raise InputError(f"the {model} model fits on latent codes: give {name('latents')}")
        codes = load_latents(latents)
        extra["latents_sha256"] = sha256_file(latents)
        chosen = config.space or codes.space
        if chosen == "styles" and generator is not None:
            from stylesurv.gan.checkpoint import load_generator
            from stylesurv.gan.stylespace import with_styles

            codes = with_styles(codes, load_generator(generator).eval())
            extra["generator_sha256"] = sha256_file(generator)
        k = kind.default_pca if config.pca is None else (config.pca or None)
        spec = FeatureSpec(space=chosen, wplus_reduce=config.wplus_reduce, pca=k, clinical=clinical)
        joined = ("fusion" if fusion == "late" else "joint") if clinical else None
        options = {"l1_ratio": config.l1_ratio} if model == "coxnet" else {}
        factory = ModelFactory(kind=model, clinical_kind=joined, options=options)
        data = join_latents(codes, table, chosen, clinical)
        if face_subspace is not None:
            from stylesurv.gan.face_subspace import load_face_subspace

            found = load_face_subspace(face_subspace, config.face_threshold)
            if found.dim == 0:
                raise InputError(
                    f"{face_subspace}: no direction reaches the face-share threshold {found.threshold:g}; "
                    f"lower it ({name('face_threshold')})"
                )
            restriction = found.restriction()
            extra["face_subspace"] = {
                "file": str(face_subspace),
                "threshold": found.threshold,
                "dim": found.dim,
            }
    info(
        f"fitting {model} on {len(data)} patients ({int(data.event.sum())} events), features {spec.to_dict()}"
    )
    times = np.asarray(config.auc_times, dtype=np.float64) if config.auc_times else None
    return fit_bundle(
        data, spec, factory, out, config.folds, config.repeats, config.seed, config.permutations, extra,
        times, config.tau, restriction,
    )  # fmt: skip
