"""Score new photos with a finished run: align, embed and predict exactly as the run did for its cohort.

Each photo goes through the run's own alignment settings (``aligned/align.json``) and QC; a photo whose
status the run would not use downstream (no face, unreadable, and by default also low resolution or an
extreme pose) gets no score and a message naming the file.  Usable photos are embedded with the run's
generator, encoder and embed settings (``manifest.json`` config "embed" and the run's seed, each image's
randomness seeded by its name as `stylesurv.invert.embed` does by patient id), so a photo of the cohort
named ``<patient_id>.<ext>`` gets (nearly) the code it has in the run's latents.

Per photo the survival bundle gives the risk (log relative hazard for Cox-family models) and the predicted
survival curve S(t); the risk group places the risk against the run's out-of-fold risks (``oof_risk.csv``:
median split low/high, and tertiles low/intermediate/high, a risk on a threshold going to the higher
group); the health attribute is the code's projection on the health direction, standardised over the run's
cohort exactly as the explain stage does (higher = healthier); and the reconstruction is edited along that
direction from -2 to +2 cohort SDs.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from stylesurv.app.pipeline import PRIMARY_MODELS, RunArtifacts, embed_networks, embed_settings, read_run
from stylesurv.core.aligned import FACE_LABEL, SETTINGS_FILE, read_settings
from stylesurv.core.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from stylesurv.core.console import info, make_progress, warn
from stylesurv.core.csvcells import safe_frame
from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents, load_latents, save_latents
from stylesurv.explain.direction import HealthDirection, codes_in_space, health_direction
from stylesurv.explain.edit import image_grid, render_edits, save_png, symmetric_alphas
from stylesurv.faces.folder import AlignConfig, align_photo, read_landmarks_csv
from stylesurv.faces.mask import region_mask
from stylesurv.gan.render import style_space_view, to_uint8
from stylesurv.invert.embed import EmbedConfig, Networks, embed_batch
from stylesurv.survival.bundle import OOF_RISK, SurvivalBundle, load_bundle
from stylesurv.survival.data import LATENT_SPACES

MEDIAN_GROUPS = ("low", "high")
TERTILE_GROUPS = ("low", "intermediate", "high")
EDIT_MAX_SD = 2.0  # edits span -2 .. +2 cohort SDs of the health attribute
EDIT_STEPS = 5  # columns of an edit strip (odd: the middle one is the reconstruction)
if TYPE_CHECKING:
    from rich.table import Table

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# ----------------------------------------------------------------------------------------------- risk groups
@dataclass(frozen=True)
class RiskThresholds:
    """Cut points of the run's out-of-fold risks: the median, and the tertiles (1/3 and 2/3 quantiles)."""

    median: float
    tertiles: tuple[float, float]
    n_patients: int  # patients whose out-of-fold risk set the cut points

    def median_group(self, risk: float) -> str:
        """The median-split group: low below the median, else high."""
        return MEDIAN_GROUPS[int(risk >= self.median)]

    def tertile_group(self, risk: float) -> str:
        """The tertile group: low, intermediate or high (a risk on a cut point goes to the higher group)."""
        return TERTILE_GROUPS[int(np.searchsorted(self.tertiles, risk, side="right"))]

    def to_json(self) -> dict[str, Any]:
        return {"median": self.median, "tertiles": list(self.tertiles), "n_patients": self.n_patients}


def risk_thresholds(oof_csv: str | Path) -> RiskThresholds:
    """Risk-group cut points from a bundle's oof_risk.csv (with repeated CV, each patient's mean risk)."""
    path = Path(oof_csv)
    try:
        frame = pd.read_csv(path, dtype={"patient_id": str})
    except FileNotFoundError:
        raise InputError(
            f"{path}: not found; the bundle needs its out-of-fold risks (rerun `stylesurv fit`)"
        ) from None
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: unreadable out-of-fold risk table ({exc})") from None
    if not {"patient_id", "risk"} <= set(frame.columns):
        raise InputError(f"{path}: needs columns patient_id and risk; rerun `stylesurv fit`")
    risk = frame.groupby("patient_id", sort=False)["risk"].mean().to_numpy(dtype=np.float64)
    risk = risk[np.isfinite(risk)]
    if len(risk) < 3:
        raise InputError(
            f"{path}: fewer than 3 patients with a finite out-of-fold risk; cannot form risk groups"
        )
    low, high = np.quantile(risk, [1 / 3, 2 / 3])
    return RiskThresholds(float(np.median(risk)), (float(low), float(high)), len(risk))


# --------------------------------------------------------------------------------------------- the predictor
@dataclass
class Predictor:
    """Everything of a finished run that scoring a new photo needs, loaded once."""

    run: RunArtifacts
    model_name: str
    bundle: SurvivalBundle
    networks: Networks
    embed_config: EmbedConfig
    align_config: AlignConfig
    thresholds: RiskThresholds
    direction: HealthDirection | None  # None when no bundle of the run has a linear latent direction
    direction_model: str | None  # the bundle the direction comes from
    direction_styles: bool  # the direction lies in style space (a bundle fitted on styles)
    w_std: float  # the projector's latent noise scale for this generator

    @property
    def generator(self) -> torch.nn.Module:
        return self.networks.generator


def choose_model(bundles: dict[str, Path], model: str | None) -> str:
    """The bundle to score with: ``model`` if given, else coxnet when the run has it, else the first."""
    if model is not None:
        if model not in bundles:
            raise InputError(f"the run has no model {model!r}; --model must be one of {', '.join(bundles)}")
        return model
    return "coxnet" if "coxnet" in bundles else next(iter(bundles))


def align_config_of(run: RunArtifacts) -> AlignConfig:
    """The alignment settings the run's cohort was aligned with (aligned/align.json; else the config's)."""
    settings = read_settings(run.aligned)
    if settings is None:
        return run.config.align
    try:
        return AlignConfig.from_settings(settings)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{run.aligned / SETTINGS_FILE}: unreadable alignment settings ({exc}); re-run the align stage"
        ) from None


def networks_of(run: RunArtifacts, generator: torch.nn.Module | None = None) -> Networks:
    """The generator (``generator`` if already loaded) and encoder the run embedded its cohort with, in eval
    mode, the encoder checked against the generator."""
    from stylesurv.invert.encoder import check_encoder_matches

    networks = embed_networks(run.generator, run.encoder, generator)
    networks.generator.eval().requires_grad_(False)
    if networks.encoder is not None:
        networks.encoder.eval().requires_grad_(False)
        check_encoder_matches(networks.encoder, networks.generator, str(run.encoder))
    return networks


def _direction(
    run: RunArtifacts, model_name: str, bundle: SurvivalBundle, cohort: Latents, generator: torch.nn.Module
) -> tuple[HealthDirection | None, str | None, bool]:
    """The health direction of the chosen bundle if it is linear, else of the run's explain bundle, and
    whether it lies in style space."""
    candidates = [model_name, *(m for m in PRIMARY_MODELS if m in run.bundles and m != model_name)]
    for name in candidates:
        source = bundle if name == model_name else load_bundle(run.bundles[name])
        if source.spec.space not in LATENT_SPACES or not source.model.is_linear:
            continue
        gradient = np.asarray(source.latent_direction(), dtype=np.float64)
        styles = source.spec.space == "styles"
        codes = style_space_view(cohort, generator)[0] if styles else cohort
        return health_direction(gradient, codes_in_space(codes, tuple(gradient.shape))), name, styles
    return None, None, False


def load_predictor(run_dir: str | Path, model: str | None = None) -> Predictor:
    """Load a finished run's networks, settings, chosen survival bundle, risk thresholds and direction."""
    from stylesurv.gan.checkpoint import load_generator
    from stylesurv.invert.project import w_std_estimate

    if not Path(run_dir).is_dir():
        raise InputError(f"{run_dir}: run folder not found; give the --out of `stylesurv run` or `demo`")
    run = read_run(run_dir)
    model_name = choose_model(run.bundles, model)
    bundle = load_bundle(run.bundles[model_name])
    if bundle.spec.clinical:
        face_only = [name for name, path in run.bundles.items() if not load_bundle(path).spec.clinical]
        raise InputError(
            f"model {model_name!r} also needs the clinical covariates {', '.join(bundle.spec.clinical)}, "
            "which a photo does not give; choose a face-only model with --model "
            f"({', '.join(face_only) or 'none in this run'})"
        )
    align_config = align_config_of(run)
    generator = load_generator(run.generator).eval().requires_grad_(False)
    if generator.img_resolution != align_config.resolution:
        raise InputError(
            f"{run.aligned / SETTINGS_FILE}: the run aligned at {align_config.resolution} px but its "
            f"generator {run.generator} makes {generator.img_resolution} px images"
        )
    networks = networks_of(run, generator)
    cohort = load_latents(run.latents)
    embedded_with = cohort.meta.get("generator_sha256")
    if embedded_with and embedded_with != networks.generator_sha256:
        raise InputError(
            f"{run.latents} was embedded with another generator than {run.generator} (sha256 "
            f"{embedded_with[:12]} vs {networks.generator_sha256[:12]}); new photos' codes would not compare "
            f"with the cohort's: rerun `stylesurv run` on {run_dir} to finish it with one generator"
        )
    embed_config = embed_settings(run.config).for_generator(generator)
    direction, direction_model, direction_styles = _direction(run, model_name, bundle, cohort, generator)
    if direction is None:
        warn("no model of this run has a linear latent direction (coxnet, coxph): no health edits")
    return Predictor(
        run=run,
        model_name=model_name,
        bundle=bundle,
        networks=networks,
        embed_config=embed_config,
        align_config=align_config,
        thresholds=risk_thresholds(run.bundles[model_name] / OOF_RISK),
        direction=direction,
        direction_model=direction_model,
        direction_styles=direction_styles,
        w_std=w_std_estimate(generator, embed_config.project.w_avg_samples),
    )


# ------------------------------------------------------------------------------------------------ results
@dataclass
class PhotoPrediction:
    """One photo's outcome: its QC verdict and, when usable, its code, scores and pictures."""

    photo: Path
    name: str  # unique name of the photo (its file stem); its embedding is seeded by its pixels
    status: str  # the QC status of `stylesurv.faces.qc`
    reason: str  # why the status (empty when ok)
    scored: bool = False
    risk: float = float("nan")
    group_median: str = ""
    group_tertile: str = ""
    health_attribute: float = float("nan")
    median_survival: float = float("nan")  # days; inf when S(t) stays above 0.5 over the stored times
    survival: pd.Series | None = None  # S(t) at the bundle's times (index: days)
    code: np.ndarray | None = None  # [w_dim] or [num_ws, w_dim] as embedded
    metrics: dict[str, float] = field(default_factory=dict)  # reconstruction metrics of the embedding
    aligned: np.ndarray | None = None  # [R, R, 3] uint8
    reconstruction: np.ndarray | None = None  # [R, R, 3] uint8
    edits: np.ndarray | None = None  # [A, R, R, 3] uint8, the reconstruction moved along the direction

    def error(self) -> str:
        """The message for a photo that got no score: the file, its status and why."""
        return f"{self.photo}: {self.status} ({self.reason})"

    def row(self) -> dict[str, Any]:
        """The photo's line of predictions.csv."""
        return {
            "photo": str(self.photo),
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "risk": self.risk,
            "risk_group": self.group_tertile,
            "risk_group_median": self.group_median,
            "health_attribute": self.health_attribute,
            "median_survival_days": self.median_survival,
            **{f"recon_{k}": v for k, v in self.metrics.items()},
        }


@dataclass
class Predictions:
    """Predictions for several photos, with the run settings they were made under; renders itself."""

    photos: list[PhotoPrediction]
    model: str
    direction_model: str | None
    thresholds: RiskThresholds
    alphas: np.ndarray  # edit steps in cohort SDs of the health attribute

    @property
    def failed(self) -> list[PhotoPrediction]:
        return [p for p in self.photos if not p.scored]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([p.row() for p in self.photos])

    def table(self) -> Table:
        """A rich table: photo, risk, risk group, health attribute, median predicted survival, QC."""
        from rich.table import Table

        table = Table(title=f"predictions ({self.model})")
        for column in ("photo", "risk", "group", "health attribute", "median survival (days)", "QC"):
            left = column in ("photo", "group", "QC")
            table.add_column(column, justify="left" if left else "right", overflow="fold")
        for p in self.photos:
            if not p.scored:
                table.add_row(str(p.photo), "-", "-", "-", "-", f"[red]{p.status}[/red]")
                continue
            median = (
                f"> {p.survival.index[-1]:.0f}" if np.isinf(p.median_survival) else f"{p.median_survival:.0f}"
            )
            health = "-" if np.isnan(p.health_attribute) else f"{p.health_attribute:+.2f}"
            qc = p.status if p.status == "ok" else f"[yellow]{p.status}[/yellow]"
            table.add_row(str(p.photo), f"{p.risk:+.3f}", p.group_tertile, health, median, qc)
        return table

    def to_json(self) -> dict[str, Any]:
        photos = []
        for p in self.photos:
            entry = {k: _json_number(v) for k, v in p.row().items()}
            if p.survival is not None:
                entry["survival"] = {"time": p.survival.index.tolist(), "probability": p.survival.tolist()}
            photos.append(entry)
        return {
            "model": self.model,
            "direction_model": self.direction_model,
            "risk_thresholds": self.thresholds.to_json(),
            "edit_alphas": self.alphas.tolist(),
            "photos": photos,
        }


def _json_number(value: Any) -> Any:
    """NaN and infinity have no JSON form: NaN becomes null, infinity the string "inf"."""
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else "inf"
    return value


def median_survival(survival: pd.Series) -> float:
    """The first time at which S(t) <= 0.5, or inf when the curve stays above 0.5."""
    below = np.flatnonzero(survival.to_numpy(dtype=np.float64) <= 0.5)
    return float(survival.index[below[0]]) if len(below) else float("inf")


def photo_names(photos: Sequence[Path]) -> list[str]:
    """Unique names from the file stems (characters unsafe in a file name replaced; repeats numbered)."""
    names: list[str] = []
    for photo in photos:
        base = _UNSAFE_NAME.sub("_", photo.stem).strip("._") or "photo"
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base}-{k}"
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------- predicting
def _align(
    prediction: PhotoPrediction, options: AlignConfig, given: np.ndarray | None, allow_flagged: bool
) -> np.ndarray | None:
    """Align one photo with the run's settings; fills the QC fields and returns the face mask if usable."""
    from stylesurv.cohort.images import read_image

    try:
        image, _ = read_image(prediction.photo)
        verdict, aligned, _ = align_photo(image, options, given)
    except InputError as exc:  # the message names the file; the error line names it already
        prediction.status, prediction.reason = "unreadable", str(exc).removeprefix(f"{prediction.photo}: ")
        return None
    except RuntimeError as exc:  # dlib reports its internal failures as RuntimeError
        prediction.status, prediction.reason = "unreadable", f"face detection failed ({exc})"
        return None
    prediction.status, prediction.reason = verdict.status, verdict.reason
    if aligned is None:
        return None
    if verdict.status not in options.qc.usable and not allow_flagged:
        prediction.reason += "; the run does not use such photos (--allow-flagged scores it anyway)"
        return None
    prediction.aligned = aligned.image
    return region_mask(aligned.landmarks, options.resolution, options.mask) == FACE_LABEL


def _embed(predictor: Predictor, batch: list[PhotoPrediction], faces: list[np.ndarray]) -> Latents:
    """Embed a batch of aligned photos as the run's embed stage did; fills code, metrics, reconstruction."""
    pixels = np.stack([p.aligned for p in batch])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
    masks = torch.from_numpy(np.stack(faces).astype(np.float32))[:, None]
    names = [p.name for p in batch]
    latents, recon = embed_batch(
        predictor.networks, images, masks, np.ones(len(batch), bool), names, predictor.embed_config,
        predictor.w_std,
    )  # fmt: skip
    codes = latents.codes()
    for i, (prediction, image) in enumerate(zip(batch, to_uint8(recon), strict=True)):
        prediction.code = codes[i]
        prediction.reconstruction = image
        prediction.metrics = {k: float(v[i]) for k, v in latents.metrics.items() if np.isfinite(v[i])}
    return latents


def _score(predictor: Predictor, batch: list[PhotoPrediction], latents: Latents, alphas: np.ndarray) -> None:
    """Risk, groups, survival curve, health attribute and edits of an embedded batch."""
    bundle = predictor.bundle
    images = None
    if bundle.spec.space == "image":
        images = np.stack([p.aligned for p in batch]).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    risk = bundle.predict(latents, images=images)
    survival = bundle.predict_survival_function(latents, images=images)
    direction = predictor.direction
    if direction is not None:
        generator: torch.nn.Module = predictor.generator
        if predictor.direction_styles:
            latents, generator = style_space_view(latents, generator)
        health = direction.attribute(codes_in_space(latents, direction.shape))
        render = latents.wplus if latents.wplus is not None else latents.w
        edits = render_edits(generator, render, direction, alphas, predictor.embed_config.batch)
    elif bundle.spec.space in LATENT_SPACES:
        health, edits = bundle.health_attribute(latents), None
    else:
        health, edits = np.full(len(batch), np.nan), None
    for i, p in enumerate(batch):
        p.scored = True
        p.risk = float(risk[i])
        p.group_median = predictor.thresholds.median_group(p.risk)
        p.group_tertile = predictor.thresholds.tertile_group(p.risk)
        p.survival = survival.iloc[i].rename(p.name)
        p.median_survival = median_survival(p.survival)
        p.health_attribute = float(health[i])
        p.edits = None if edits is None else edits[i]


def predict_photos(
    predictor: Predictor,
    photos: Sequence[str | Path],
    landmarks_csv: str | Path | None = None,
    allow_flagged: bool = False,
    max_sd: float = EDIT_MAX_SD,
    steps: int = EDIT_STEPS,
    upsample: int | None = None,
    cnn: bool = False,
) -> Predictions:
    """Align, QC, embed and score each photo; a photo that fails QC gets its status and reason, no score.

    ``landmarks_csv``: 68-point landmarks in photo pixels (patient_id, x0, y0, ..., x67, y67), a row
    matched to a photo by its file name or stem; photos without a row use the detector.
    ``allow_flagged``: also score photos whose status is not fatal but that the run's QC excludes.
    ``max_sd``, ``steps``: the edit strip spans -max_sd .. +max_sd cohort SDs in ``steps`` columns.
    ``upsample``, ``cnn``: detector settings instead of the run's, for faces the run's settings miss (they
    change which face is found, not how it is aligned).
    """
    if not photos:
        raise InputError("give at least one photo to predict")
    paths = [Path(p) for p in photos]
    alphas = symmetric_alphas(max_sd, steps)
    options = predictor.align_config
    options = replace(
        options, upsample=options.upsample if upsample is None else upsample, cnn=options.cnn or cnn
    ).validate({"upsample": "--upsample"})
    given = read_landmarks_csv(landmarks_csv) if landmarks_csv is not None else {}
    results = [
        PhotoPrediction(photo=p, name=n, status="", reason="")
        for p, n in zip(paths, photo_names(paths), strict=True)
    ]
    usable: list[tuple[PhotoPrediction, np.ndarray]] = []
    with make_progress() as progress:
        task = progress.add_task("aligning photos", total=len(results))
        for prediction in results:
            points = given.get(prediction.photo.name, given.get(prediction.photo.stem))
            face = _align(prediction, options, points, allow_flagged)
            if face is not None:
                usable.append((prediction, face))
            progress.advance(task)
    size = max(predictor.embed_config.batch, 1)
    batches = [usable[i : i + size] for i in range(0, len(usable), size)]
    steps_per_batch = max(predictor.embed_config.project.steps, 1)
    with make_progress() as progress:
        task = progress.add_task("embedding photos", total=len(batches) * steps_per_batch)
        for chunk in batches:
            batch = [p for p, _ in chunk]
            latents = _embed(predictor, batch, [f for _, f in chunk])
            _score(predictor, batch, latents, alphas)
            progress.advance(task, steps_per_batch)
    return Predictions(results, predictor.model_name, predictor.direction_model, predictor.thresholds, alphas)


# ------------------------------------------------------------------------------------------------- writing
def survival_figure(prediction: PhotoPrediction, model: str) -> bytes:
    """PNG of a photo's predicted survival curve with its median marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    assert prediction.survival is not None
    curve = prediction.survival
    fig, ax = plt.subplots(figsize=(6, 4))
    # S(0) = 1; each stored time starts a step of the curve
    times = np.concatenate([[0.0], curve.index.to_numpy(dtype=np.float64)])
    ax.step(times, np.concatenate([[1.0], curve.to_numpy()]), where="post", color="#264653")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    if np.isfinite(prediction.median_survival):
        ax.axvline(prediction.median_survival, color="#e76f51", linestyle="--", linewidth=1)
        median = f"median {prediction.median_survival:.0f} days"
    else:
        median = f"median > {curve.index[-1]:.0f} days"
    ax.set_title(
        f"{prediction.name} ({model}): risk {prediction.risk:+.2f}, {prediction.group_tertile} risk, {median}"
    )
    ax.set_xlabel("time (days)")
    ax.set_ylabel("predicted survival probability")
    ax.set_ylim(0, 1.02)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def write_predictions(predictions: Predictions, out_dir: str | Path) -> Path:
    """Write predictions.csv/.json, the scored photos' codes (latents.npz, names as patient ids) and per
    scored photo one PNG in each of aligned/, reconstruction/, edits/ and survival/."""
    from PIL import Image

    out = Path(out_dir)
    for p in predictions.photos:
        if not p.scored:
            continue
        assert p.aligned is not None and p.reconstruction is not None
        save_png(Image.fromarray(p.aligned), out / "aligned" / f"{p.name}.png")
        save_png(Image.fromarray(p.reconstruction), out / "reconstruction" / f"{p.name}.png")
        if p.edits is not None:
            save_png(image_grid(p.edits[None]), out / "edits" / f"{p.name}.png")
        write_bytes_atomic(out / "survival" / f"{p.name}.png", survival_figure(p, predictions.model))
    scored = [p for p in predictions.photos if p.scored]
    if scored:
        codes = np.stack([p.code for p in scored])
        latents = Latents(
            patient_id=np.array([p.name for p in scored]),
            w=codes if codes.ndim == 2 else None,
            wplus=codes if codes.ndim == 3 else None,
            meta={"model": predictions.model, "photos": [str(p.photo) for p in scored]},
        )
        save_latents(out / "latents.npz", latents)
    write_text_atomic(
        out / "predictions.csv", safe_frame(predictions.to_frame()).to_csv(index=False, float_format="%.6g")
    )
    write_json_atomic(out / "predictions.json", predictions.to_json())
    info(f"predictions written to {out}")
    return out
