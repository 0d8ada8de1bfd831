"""The whole method as one resumable pipeline: validate, align, fine-tune, encode, embed, fit, explain,
report.

Every stage runs through :class:`stylesurv.run.RunDir`: it is keyed by the hash of its inputs and config,
skipped when nothing changed, resumed from what an interrupted run left when it was started with the same
key, and marked done only when complete.  The run folder layout is the one the report reads:

    RUN/manifest.json  validate/  aligned/  finetune/  encoder/  embed/  fit/<model>/  counterfactual/
        explain/  report.html
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylesurv.app.config import FINETUNE_SET_BY_RUN, RunConfig
from stylesurv.core.atomic import write_json_atomic
from stylesurv.core.config import from_dict, to_dict
from stylesurv.core.console import info, warn
from stylesurv.core.errors import InputError
from stylesurv.core.hashing import hash_tree
from stylesurv.core.rundir import RunDir, StageResult

ASSETS = Path(__file__).resolve().parent.parent / "assets"  # src/stylesurv/assets, shipped with the package
BASE_GENERATOR = ASSETS / "base_generator.safetensors"
BASE_ENCODER = ASSETS / "base_encoder"
# bundles whose latent direction the explain stage uses, first found first: the direction adjusted for the
# clinical covariates when there is one (what the face shows beyond age and stage), else the latent-only one
# explained by default, the first one fitted: face-bound models first (a run lists them only when wanted)
PRIMARY_MODELS = tuple(
    f"{name}{suffix}"
    for suffix in ("_face", "")
    for name in ("coxnet_adjusted", "coxph_adjusted", "coxnet", "coxph")
)
FACE_SUFFIX = "_face"  # a fit.models entry with it is fitted on codes kept to the face subspace

if TYPE_CHECKING:
    from torch import nn

    from stylesurv.invert.embed import EmbedConfig, Networks
    from stylesurv.survival.config import FitConfig


@dataclass
class PipelineResult:
    """What a pipeline run produced: the run folder, each stage's result, and the headline metrics."""

    run_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> cv summary means and CIs

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"

    def stage_times(self) -> dict[str, float]:
        return {stage.name: stage.seconds for stage in self.stages}


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB (Linux ru_maxrss is in kB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


# -------------------------------------------------------------------------------------------------- stages
def _validate(cohort: Path) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from stylesurv.cohort.table import validate_cohort

        report = validate_cohort(cohort)
        write_json_atomic(out / "summary.json", report.to_dict())
        if not report.ok:
            first = "; ".join(f"{p.file or ''} row {p.row}: {p.message}" for p in report.errors[:5])
            raise InputError(
                f"{cohort}: {len(report.errors)} problem(s) in the cohort ({first}); "
                f"run `stylesurv validate {cohort}` for the full list and fixes"
            )

    return build


def _align(cohort: Path, config: RunConfig, final: Path) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from stylesurv.faces.folder import align_cohort, safe_worker_count

        landmarks = Path(config.landmarks) if config.landmarks else None
        summary = align_cohort(cohort, out, config.align, landmarks, safe_worker_count(0))
        info(summary.message().replace(str(out), str(final)))  # where the folder will be once done

    return build


def _finetune(aligned: Path, generator: Path, config: RunConfig) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from stylesurv.gan.checkpoint import save_networks
        from stylesurv.gan.train import snapshot_generator, train

        options = dataclasses.replace(
            config.finetune,
            data=str(aligned),
            out=str(out / "train"),
            resume=str(generator),
            seed=config.seed,
        )
        result = train(options)
        G, D, meta = snapshot_generator(result.snapshot)
        save_networks(out / "generator.safetensors", G_ema=G, D=D, extra_meta={"kimg": result.nimg / 1000})

    return build


def _encoder(generator: Path, config: RunConfig) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from stylesurv.core.hashing import sha256_file
        from stylesurv.gan.checkpoint import load_generator
        from stylesurv.invert.encoder import EncoderTrainConfig, save_encoder, train_encoder

        G = load_generator(generator)
        encoder = train_encoder(G, EncoderTrainConfig(steps=config.encoder_steps, seed=config.seed))
        info = {"generator_sha256": sha256_file(generator), "steps": config.encoder_steps}
        save_encoder(out, encoder, info)

    return build


def embed_networks(generator: Path, encoder: Path | None, loaded: nn.Module | None = None) -> Networks:
    """The networks an embedding runs with, loaded from their files (``loaded``: the generator, already
    loaded from ``generator``), with the hashes that name them."""
    from stylesurv.core.hashing import sha256_file
    from stylesurv.gan.checkpoint import load_generator
    from stylesurv.invert.embed import Networks
    from stylesurv.invert.encoder import encoder_identity, load_encoder

    G = loaded if loaded is not None else load_generator(generator)
    networks = Networks(generator=G, generator_sha256=sha256_file(generator))
    if encoder is not None:
        networks.encoder = load_encoder(encoder)
        networks.encoder_sha256 = encoder_identity(encoder)
    return networks


def embed_settings(config: RunConfig) -> EmbedConfig:
    """The embed stage's settings as a run config sets them."""
    return dataclasses.replace(config.embed, seed=config.seed)


def fit_settings(config: RunConfig, clinical: list[str], face_bound: bool) -> FitConfig:
    """How one of the run's fits is done: the run's [fit] section without its list of models, with the
    covariates of that model, the run's seed, and the face threshold only for a face-bound model (so the
    fit stage's key holds only what that fit reads)."""
    from stylesurv.survival.config import FitConfig

    shared = {f.name: getattr(config.fit, f.name) for f in dataclasses.fields(FitConfig)}
    shared.update(clinical=tuple(clinical), seed=config.seed)
    if not face_bound:
        shared["face_threshold"] = None
    return FitConfig(**shared)


def _embed(aligned: Path, generator: Path, encoder: Path | None, config: RunConfig) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from stylesurv.invert.embed import embed_folder

        embed_folder(aligned, embed_networks(generator, encoder), out / "latents.npz", embed_settings(config))

    return build


def _counterfactual(
    aligned: Path, generator: Path, encoder: Path | None, config: RunConfig
) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from stylesurv.invert.embed import usable_patients
        from stylesurv.studies.counterfactual import embed_counterfactuals

        networks = embed_networks(generator, encoder)
        patients = usable_patients(aligned)
        embed_counterfactuals(
            aligned, networks, embed_settings(config), out, patients, config.explain.counterfactual_patients,
            config.seed,
        )  # fmt: skip

    return build


def _fit(
    latents: Path,
    cohort: Path,
    model: str,
    settings: FitConfig,
    fusion: str,
    generator: Path,
    face_subspace: Path | None = None,
) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from stylesurv.core.console import console
        from stylesurv.survival.bundle import fit_files

        results, _ = fit_files(
            cohort,
            out,
            model,
            settings,
            fusion,
            latents=latents if model != "clinical" else None,
            generator=generator if settings.space == "styles" else None,
            face_subspace=face_subspace,
        )
        console.print(results.table())

    return build


SUBSPACE_FILE = "face_subspace.npz"


def _face_subspace(
    generator: Path, latents: Path, aligned: Path, config: RunConfig
) -> Callable[[Path], None]:
    """The face subspace of the codes the models are fitted on (no outcomes), for the face-bound models."""

    def build(out: Path) -> None:
        from stylesurv.core.latents import load_latents
        from stylesurv.explain.config import ExplainConfig
        from stylesurv.explain.outputs import find_face_subspace
        from stylesurv.gan.checkpoint import load_generator
        from stylesurv.gan.face_subspace import save_face_subspace
        from stylesurv.gan.render import style_space_view

        codes = load_latents(latents)
        net = load_generator(generator).eval()
        space = config.fit.space or config.embed.project.space
        if space == "styles":
            codes, net = style_space_view(codes, net)
        options = ExplainConfig(
            attribution_patients=config.explain.attribution_patients,
            face_patients=config.explain.face_patients,
            seed=config.seed,
        )
        shape = tuple(codes.codes("w" if space in ("w", "styles") else "wplus").shape[1:])
        found = find_face_subspace(net, codes, shape, aligned, options)
        if found is None:
            raise InputError(f"{aligned}/masks: face-bound models need the aligned photos' face masks")
        save_face_subspace(out / SUBSPACE_FILE, found)

    return build


def _explain(
    bundle: Path,
    generator: Path,
    latents: Path,
    aligned: Path,
    truth: Path | None,
    counterfactual: Path | None,
    config: RunConfig,
    face_subspace: Path | None = None,
) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from stylesurv.cohort.table import load_clinical
        from stylesurv.core.latents import load_latents
        from stylesurv.gan.checkpoint import load_generator
        from stylesurv.gan.face_subspace import load_face_subspace
        from stylesurv.studies.explain_stage import ExplainInputs, explain_stage
        from stylesurv.survival.bundle import load_bundle

        subspace = None
        if face_subspace is not None:  # the face_subspace stage found it in the same codes, same options
            subspace = load_face_subspace(face_subspace, config.explain.face_threshold)
        swapped = load_latents(counterfactual / "latents.npz") if counterfactual is not None else None
        inputs = ExplainInputs(
            bundle=load_bundle(bundle),
            generator=load_generator(generator),
            latents=load_latents(latents),
            paths={"bundle": str(bundle), "generator": str(generator), "latents": str(latents)},
            aligned=aligned,
            truth=truth,
            outcomes=load_clinical(Path(config.cohort)),
            subspace=subspace,
            swapped=swapped,
            remove_nuisance=config.explain.remove_nuisance,
        )
        explain_stage(inputs, dataclasses.replace(config.explain, seed=config.seed), out)

    return build


# ------------------------------------------------------------------------------------------- reading a run
@dataclass(frozen=True)
class RunArtifacts:
    """Where a finished run keeps what `predict` needs to score new photos the same way."""

    config: RunConfig
    generator: Path  # the generator the codes were embedded with (fine-tuned when fine-tuning ran)
    encoder: Path | None  # encoder folder used to initialise the embedding, if any
    latents: Path  # the cohort's latents file
    bundles: dict[str, Path]  # model name -> bundle folder
    aligned: Path  # the cohort's aligned folder (settings in align.json)


def read_run(run_dir: str | Path) -> RunArtifacts:
    """The artefacts of a finished run folder, each checked against the record of the stage that made it.

    The generator and encoder are the ones the embed stage recorded (by path and hash), the embed settings
    its own config; bundles fitted on other latents than the run's (a rerun interrupted after a new
    embedding) are left out with a warning.  An InputError names what is missing or changed.
    """
    from stylesurv.app.config import config_from_dict
    from stylesurv.invert.embed import EmbedConfig

    manifest_file = Path(run_dir) / "manifest.json"
    if not manifest_file.is_file():
        raise InputError(f"{run_dir}: not a stylesurv run folder (no manifest.json); give the --out of a run")
    run = RunDir(run_dir)
    manifest = run.read_manifest()
    if "config" not in manifest:
        running = manifest.get("running", {})
        since = (
            f" (started {running['started']})" if isinstance(running, dict) and "started" in running else ""
        )
        raise InputError(
            f"{run.root}: the run is unfinished{since}; run `stylesurv run` on it to the end first"
        )
    config = config_from_dict(manifest["config"], str(manifest_file))
    embedded = run.stage_record("embed")
    if embedded is None or not (run.stage_path("embed") / "latents.npz").is_file():
        raise InputError(
            f"{run.root}: the run is unfinished (no finished embed stage); run it to the end first"
        )
    if "paths" in embedded:
        generator = _recorded_input(run, embedded, "generator")
        encoder = _recorded_input(run, embedded, "encoder") if "encoder" in embedded["paths"] else None
        if hash_tree(run.stage_path("embed")) != embedded.get("outputs"):
            raise InputError(
                f"{run.stage_path('embed')}: changed since the run wrote it (corrupt or edited?); "
                f"rerun `stylesurv run` on {run.root} to embed again"
            )
        embed = from_dict(EmbedConfig, embedded["config"], f"{run.root}: the embed stage's record")
        config = dataclasses.replace(config, embed=embed, seed=embed.seed)
    else:  # a run folder written before stages recorded their inputs' paths
        finetuned = run.stage_path("finetune") / "generator.safetensors"
        generator = finetuned if run.stage_key("finetune") and finetuned.is_file() else Path(config.generator)
        encoder = Path(config.encoder) if config.encoder else None
        if encoder is None and run.stage_key("encoder"):
            encoder = run.stage_path("encoder")
        if not generator.is_file():
            raise InputError(f"{generator}: the run's generator is missing (moved or deleted?)")
    latents = run.stage_path("embed") / "latents.npz"
    bundles = _current_bundles(run, latents)
    if not bundles:
        raise InputError(f"{run.root}: the run has no fitted model for its latents; run it to the end first")
    return RunArtifacts(config, generator, encoder, latents, bundles, run.stage_path("aligned"))


def _recorded_input(run: RunDir, record: dict[str, Any], label: str) -> Path:
    """An input of a stage as its record names it, refused when it is missing or no longer the same."""
    path = run.resolve_recorded(record["paths"][label])
    if not path.exists():
        raise InputError(
            f"{path}: the {label} the run embedded its cohort with is missing (moved or deleted?); "
            f"put it back, or rerun `stylesurv run` with the new path"
        )
    if hash_tree(path) != record["inputs"].get(label):
        raise InputError(
            f"{path}: this {label} is not the one the run embedded its cohort with (its content changed); "
            f"restore it, or rerun `stylesurv run` so that the codes and models match it"
        )
    return path


def _current_bundles(run: RunDir, latents: Path) -> dict[str, Path]:
    """The run's bundles fitted on ``latents`` as they are now (by the fit stages' records)."""
    current = hash_tree(latents)
    bundles = {}
    for folder in sorted((run.root / "fit").glob("*")):
        if not (folder / "model.json").is_file():
            continue
        record = run.stage_record(f"fit/{folder.name}")
        fitted_on = None if record is None else record.get("inputs", {}).get("latents")
        if fitted_on is not None and fitted_on != current:
            warn(f"{folder}: fitted on other latents than {latents} (a rerun stopped early?); left out")
            continue
        bundles[folder.name] = folder
    return bundles


# ------------------------------------------------------------------------------------------------ pipeline
def resolved(config: RunConfig) -> RunConfig:
    """``config`` checked against its generator before any stage starts, with what the generator decides
    filled in (the aligned resolution); an InputError names the setting that does not fit."""
    from stylesurv.gan.checkpoint import generator_shape

    resolution = generator_shape(config.generator)["img_resolution"]
    if config.align.resolution and config.align.resolution != resolution:
        raise InputError(
            f"align.resolution is {config.align.resolution} but the generator {config.generator} makes "
            f"{resolution} px images; leave it unset (0) to align at the generator's resolution"
        )
    if config.landmarks and not Path(config.landmarks).is_file():
        raise InputError(f"{config.landmarks}: landmarks file not found (the run's landmarks setting)")
    config = dataclasses.replace(config, align=config.align.for_generator(resolution))
    return config.validate()


def run_pipeline(config: RunConfig) -> PipelineResult:
    """Run (or resume) every stage of ``config`` into its run folder and write the report."""
    config.validate()  # every setting first: a bad value is named before any file is read
    cohort = Path(config.cohort)
    generator = Path(config.generator)
    if not (cohort / "clinical.csv").is_file():
        raise InputError(f"{cohort}: no clinical.csv; give a cohort folder (see `stylesurv validate --help`)")
    if not generator.is_file():
        raise InputError(f"{generator}: generator checkpoint not found")
    config = resolved(config)
    run = RunDir(config.out)
    with run.locked():
        return _run_stages(run, config)


def _run_stages(run: RunDir, config: RunConfig) -> PipelineResult:
    """Every stage of ``config`` in the locked run folder ``run``; the manifest's run-level config is
    written only once all of them are in place (until then each finished stage's record speaks for it)."""
    cohort, generator = Path(config.cohort), Path(config.generator)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run.update_manifest(running={"config": config.to_dict(), "pid": os.getpid(), "started": started})
    result = PipelineResult(run_dir=run.root)

    def stage(
        name: str,
        cfg: dict[str, Any],
        inputs: dict[str, Path],
        build: Callable[[Path], None],
        incremental: bool = False,
    ) -> Path:
        info(f"[bold]▶ {name}[/bold]")
        outcome = run.run_stage(name, cfg, inputs, build, incremental)
        result.stages.append(outcome)
        if not outcome.cached:
            info(f"  {name} took {outcome.seconds:.1f} s")
        return outcome.path

    stage("validate", {}, {"cohort": cohort}, _validate(cohort))
    align_inputs = {"cohort": cohort}
    if config.landmarks:
        align_inputs["landmarks"] = Path(config.landmarks)
    aligned = stage(
        "aligned",
        to_dict(config.align),
        align_inputs,
        _align(cohort, config, run.stage_path("aligned")),
        incremental=True,
    )

    if config.finetune.kimg > 0:
        ft_dir = stage(
            "finetune",
            {k: v for k, v in to_dict(config.finetune).items() if k not in FINETUNE_SET_BY_RUN}
            | {"seed": config.seed},
            {"aligned": aligned, "generator": generator},
            _finetune(aligned, generator, config),
        )
        generator = ft_dir / "generator.safetensors"

    encoder: Path | None = Path(config.encoder) if config.encoder else None
    if encoder is None and config.encoder_steps > 0:
        encoder = stage(
            "encoder",
            {"steps": config.encoder_steps, "seed": config.seed},
            {"generator": generator},
            _encoder(generator, config),
        )
    embed_inputs = {"aligned": aligned, "generator": generator}
    if encoder is not None:
        embed_inputs["encoder"] = encoder
    embed_dir = stage(
        "embed",
        embed_settings(config).to_dict(),
        embed_inputs,
        _embed(aligned, generator, encoder, config),
    )
    latents = embed_dir / "latents.npz"

    face_subspace = None
    if any(model.endswith(FACE_SUFFIX) for model in config.fit.models):
        subspace_cfg = {
            "space": config.fit.space or config.embed.project.space,
            "patients": config.explain.face_patients,
            "attribution_patients": config.explain.attribution_patients,
            "seed": config.seed,
        }
        subspace_inputs = {"generator": generator, "latents": latents, "aligned": aligned}
        face_subspace = stage(
            "face_subspace",
            subspace_cfg,
            subspace_inputs,
            _face_subspace(generator, latents, aligned, config),
        )

    bundles = _fit_stages(stage, config, latents, generator, face_subspace)
    result.metrics = {name: _headline(bundle) for name, bundle in bundles.items()}
    primary = _explained_bundle(bundles, config.explain.model)
    if primary is not None:
        _explain_stages(stage, config, primary, aligned, generator, encoder, latents, face_subspace)

    from stylesurv.report.html import write_report

    write_report(run.root)
    stages = run.read_manifest().get("stages", {})
    run.update_manifest(
        drop=("running",),
        config=config.to_dict(),
        seed=config.seed,
        metrics=result.metrics,
        stage_seconds={s.name: stages.get(s.name, {}).get("seconds", s.seconds) for s in result.stages},
    )
    return result


Stage = Callable[[str, dict[str, Any], dict[str, Path], Callable[[Path], None]], Path]


def _fit_stages(
    stage: Stage, config: RunConfig, latents: Path, generator: Path, face_subspace: Path | None
) -> dict[str, Path]:
    """One fit stage per model of the run; returns each model's bundle folder by name."""
    cohort = Path(config.cohort)
    bundles: dict[str, Path] = {}
    for model in config.fit.models:
        name, kind, clinical, fusion = _model_plan(model, config)
        # the key holds what this fit reads, not the list of the other models: adding one fits it alone
        settings = fit_settings(config, clinical, model.endswith(FACE_SUFFIX))
        fit_cfg = {**to_dict(settings), "model": kind, "fusion": fusion}
        fit_inputs = {"latents": latents, "clinical": cohort / "clinical.csv"}
        if config.fit.space == "styles":
            fit_inputs["generator"] = generator
        subspace = None
        if model.endswith(FACE_SUFFIX):
            assert face_subspace is not None
            subspace = fit_inputs["face_subspace"] = face_subspace / SUBSPACE_FILE
        bundles[name] = stage(
            f"fit/{name}",
            fit_cfg,
            fit_inputs,
            _fit(latents, cohort, kind, settings, fusion, generator, subspace),
        )
    return bundles


def _explain_stages(
    stage: Stage,
    config: RunConfig,
    primary: Path,
    aligned: Path,
    generator: Path,
    encoder: Path | None,
    latents: Path,
    face_subspace: Path | None,
) -> None:
    """The explain stage of the bundle ``primary``, after the counterfactual embedding it needs (if any)."""
    cohort = Path(config.cohort)
    truth_csv = cohort / "truth.csv"
    truth = truth_csv if truth_csv.is_file() else None
    explain_inputs = {"bundle": primary, "generator": generator, "latents": latents}
    counterfactual = None
    if config.explain.remove_nuisance == "counterfactual":
        embed_inputs = {"aligned": aligned, "generator": generator}
        if encoder is not None:
            embed_inputs["encoder"] = encoder
        counterfactual = stage(
            "counterfactual",
            {**embed_settings(config).to_dict(), "patients": config.explain.counterfactual_patients},
            embed_inputs,
            _counterfactual(aligned, generator, encoder, config),
        )
        explain_inputs["counterfactual"] = counterfactual
    if config.explain.remove_nuisance:
        explain_inputs["clinical"] = cohort / "clinical.csv"
    subspace_file = None
    if face_subspace is not None:
        subspace_file = explain_inputs["face_subspace"] = face_subspace / SUBSPACE_FILE
    stage(
        "explain",
        to_dict(dataclasses.replace(config.explain, seed=config.seed)),
        explain_inputs,
        _explain(primary, generator, latents, aligned, truth, counterfactual, config, subspace_file),
    )


def _explained_bundle(bundles: dict[str, Path], chosen: str) -> Path | None:
    """The bundle whose health direction the explain stage uses: ``chosen`` (a bundle name) or the first of
    PRIMARY_MODELS that was fitted and has a direction; None when there is none (nothing to explain).

    A small cohort can make the penalised Cox model keep no coefficient (the null model): it predicts
    nothing and has no direction, so the next candidate is explained, or none, with a warning, instead of
    failing the run after every fit is done.
    """
    if chosen:
        if chosen not in bundles:
            raise InputError(
                f"explain.model {chosen!r} is not among the fitted bundles ({', '.join(bundles) or 'none'})"
            )
        candidates = [chosen]
    else:
        candidates = [m for m in PRIMARY_MODELS if m in bundles]
    for name in candidates:
        if has_direction(bundles[name]):
            return bundles[name]
        warn(
            f"{name}: the model kept no latent coefficient (its penalty chose the null model, common with "
            "few patients), so it has no health direction to explain"
        )
    if candidates:
        warn("no fitted model has a health direction: the explain stage is skipped")
    return None


def has_direction(bundle: Path) -> bool:
    """Whether the bundle's latent risk gradient is non-zero and finite."""
    import numpy as np

    from stylesurv.survival.bundle import load_bundle

    gradient = np.asarray(load_bundle(bundle).latent_direction(), dtype=np.float64)
    norm = float(np.linalg.norm(gradient))
    return bool(np.isfinite(norm) and norm > 0)


def _model_plan(model: str, config: RunConfig) -> tuple[str, str, list[str], str]:
    """(bundle name, model kind, clinical covariates, fusion) of an entry of ``config.fit.models``."""
    if model.endswith(FACE_SUFFIX):
        name, kind, clinical, fusion = _model_plan(model.removesuffix(FACE_SUFFIX), config)
        if kind not in ("coxnet", "coxph", "deepsurv", "rsf", "gbsa") or fusion == "late" and clinical:
            raise InputError(
                f"fit.models entry {model!r}: only a model on latent codes (coxnet, coxph, deepsurv, rsf, "
                "gbsa, adjusted) can be face-bound"
            )
        return name + FACE_SUFFIX, kind, clinical, fusion
    clinical = list(config.fit.clinical)
    if model in ("clinical", "adjusted") and not clinical:
        raise InputError(f"the {model} model needs clinical covariates: set fit.clinical / --clinical")
    if model == "fusion":
        return f"{config.fit.fusion_model}_fusion", config.fit.fusion_model, clinical, "late"
    if model == "adjusted":
        return f"{config.fit.fusion_model}_adjusted", config.fit.fusion_model, clinical, "joint"
    if model == "clinical":
        return "clinical", "clinical", clinical, "late"
    return model, model, [], "late"


def _headline(bundle_dir: Path) -> dict[str, Any]:
    """Fold-mean Harrell's and Uno's C, IBS, the pooled out-of-fold C with its CI and the permutation p
    (CVResults.headline of the bundle's cv_results.json)."""
    from stylesurv.survival.bundle import load_cv_results

    return load_cv_results(bundle_dir).headline()


# ---------------------------------------------------------------------------------------------------- demo
@dataclass(frozen=True)
class DemoSettings:
    """The demo's synthetic cohort and the light settings that keep it within 5 minutes on 2 CPU cores."""

    n: int = 300  # patients of the synthetic cohort
    resolution: int = 64
    seed: int = 1
    finetune_kimg: float = 0.1  # brief fine-tuning of the shipped base generator on the cohort
    embed_steps: int = 20  # refinement steps after the shipped encoder
    permutations: int = 0  # the permutation test reruns the whole CV per permutation: off in the demo


def _demo_cohort_ready(cohort: Path, settings: DemoSettings) -> bool:
    """Whether ``cohort`` holds the world these settings draw (a folder from older settings is redrawn)."""
    meta = cohort / "synth.json"
    if not (cohort / "oracle.json").is_file() or not meta.is_file():
        return False
    wanted = {"n": settings.n, "seed": settings.seed, "resolution": settings.resolution, "face_bound": True}
    found = json.loads(meta.read_text())
    return all(found.get(key) == value for key, value in wanted.items())


def demo_config(out: Path, settings: DemoSettings) -> RunConfig:
    """The run config of the demo: shipped generator and encoder, brief fine-tuning, the default models."""
    from stylesurv.app.config import FINETUNE_DEFAULTS, FIT_DEFAULTS
    from stylesurv.explain.config import ExplainConfig
    from stylesurv.faces.folder import AlignConfig
    from stylesurv.invert.embed import EmbedConfig
    from stylesurv.invert.project import ProjectConfig

    cohort = out / "cohort"
    return RunConfig(
        cohort=str(cohort),
        generator=str(BASE_GENERATOR),
        encoder=str(BASE_ENCODER),
        encoder_steps=0,
        landmarks=str(cohort / "landmarks.csv"),
        out=str(out / "run"),
        seed=settings.seed,
        align=AlignConfig(resolution=settings.resolution),
        finetune=dataclasses.replace(FINETUNE_DEFAULTS, kimg=settings.finetune_kimg),
        embed=EmbedConfig(project=ProjectConfig(space="wplus", steps=settings.embed_steps), batch=50),
        fit=dataclasses.replace(FIT_DEFAULTS, clinical=("age", "stage"), permutations=settings.permutations),
        explain=ExplainConfig(attribution_patients=32, random_directions=4),
    )


def run_demo(
    out: str | Path, settings: DemoSettings | None = None
) -> tuple[PipelineResult, dict[str, float]]:
    """Synthesize the demo cohort (unaligned photos with landmarks) and run the whole pipeline on it.

    Returns the pipeline result and the cohort's oracle C-indices (face-only and face+clinical).
    """
    from stylesurv.cohort.synthetic import make_world, write_world

    settings = settings or DemoSettings()
    out = Path(out)
    for asset in (BASE_GENERATOR, BASE_ENCODER):
        if not asset.exists():
            raise InputError(f"{asset}: shipped asset missing; reinstall stylesurv (make install)")
    cohort = out / "cohort"
    start = time.perf_counter()
    if not _demo_cohort_ready(cohort, settings):
        info(f"[bold]▶ synth[/bold]: {settings.n} synthetic patients, unaligned photos with landmarks")
        world = make_world("cohort", settings.n, settings.seed)
        write_world(world, cohort, resolution=settings.resolution, unaligned=True)
    synth_seconds = time.perf_counter() - start
    result = run_pipeline(demo_config(out, settings))
    result.stages.insert(
        0, StageResult("synth", cohort, "", cached=synth_seconds < 0.5, seconds=synth_seconds)
    )
    oracle = json.loads((cohort / "oracle.json").read_text())
    return result, oracle
