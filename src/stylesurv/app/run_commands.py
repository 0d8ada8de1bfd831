"""`stylesurv run` (the whole pipeline, resumable) and `stylesurv demo` (the same on the synthetic world)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

# the run config's settings that a flag of `stylesurv run` sets (errors name the flag)
FLAGS = {
    "cohort": "--cohort", "generator": "--generator", "out": "--out", "encoder": "--encoder",
    "seed": "--seed", "encoder_steps": "--encoder-steps", "landmarks": "--landmarks",
    "align.resolution": "--resolution",
    "finetune.kimg": "--finetune-kimg", "embed.project.steps": "--steps", "fit.models": "--models",
    "fit.clinical": "--clinical", "fit.space": "--space", "explain.remove_nuisance": "--remove-nuisance",
}  # fmt: skip


def run(
    config_file: Annotated[
        Path | None, typer.Argument(help="Run config (TOML); flags below override its fields.")
    ] = None,
    cohort: Annotated[
        Path | None, typer.Option("--cohort", help="Cohort folder (clinical.csv + photos/).")
    ] = None,
    generator: Annotated[
        Path | None,
        typer.Option("--generator", help="StyleGAN2 checkpoint: native, NVIDIA .pkl, rosinality .pt."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (created or resumed).")] = None,
    encoder: Annotated[
        Path | None, typer.Option("--encoder", help="Encoder folder for the generator.")
    ] = None,
    encoder_steps: Annotated[
        int | None,
        typer.Option("--encoder-steps", help="Without --encoder: train one for this many steps (0: none)."),
    ] = None,
    landmarks: Annotated[
        Path | None, typer.Option("--landmarks", help="68-point landmarks CSV instead of the face detector.")
    ] = None,
    resolution: Annotated[
        int | None, typer.Option("--resolution", help="Aligned size R (default: the generator's).")
    ] = None,
    finetune_kimg: Annotated[
        float | None, typer.Option("--finetune-kimg", help="Fine-tune the generator on the cohort (kimg).")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Embedding refinement steps.")] = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models", help="Comma-separated: coxnet,coxph,deepsurv,rsf,gbsa,fusion,adjusted,clinical."
        ),
    ] = None,
    clinical: Annotated[
        str | None,
        typer.Option("--clinical", help="Comma-separated clinical covariates (fusion, adjusted, clinical)."),
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            help="Latent features of the models: 'styles' (default), the generator's StyleSpace channels "
            "of the codes (health edits stay more on the face), or 'codes', the embedded codes as they are.",
        ),
    ] = None,
    remove_nuisance: Annotated[
        str | None,
        typer.Option(
            "--remove-nuisance",
            help="Refit the explained model without nuisance directions: photo | truth | counterfactual.",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of every stage.")] = None,
) -> None:
    """Run the whole pipeline from photos to report; an interrupted run resumes where it stopped.

    Example: stylesurv run --cohort my_cohort --generator ffhq.pkl --out runs/my_run --clinical age,stage
    """
    from stylesurv.app.config import RunConfig, load_config
    from stylesurv.app.pipeline import run_pipeline
    from stylesurv.core.console import info
    from stylesurv.core.errors import InputError

    config = load_config(config_file) if config_file is not None else RunConfig()
    overrides = {
        "cohort": cohort, "generator": generator, "out": out, "encoder": encoder, "seed": seed,
        "encoder_steps": encoder_steps, "landmarks": landmarks,
    }  # fmt: skip
    for name, value in overrides.items():
        if value is not None:
            setattr(config, name, str(value) if isinstance(value, Path) else value)
    if resolution is not None:
        config.align = replace(config.align, resolution=resolution)
    if finetune_kimg is not None:
        config.finetune = replace(config.finetune, kimg=finetune_kimg)
    if steps is not None:
        config.embed = replace(config.embed, project=replace(config.embed.project, steps=steps))
    if models is not None:
        config.fit = replace(config.fit, models=tuple(m.strip() for m in models.split(",") if m.strip()))
    if clinical is not None:
        config.fit = replace(config.fit, clinical=tuple(c.strip() for c in clinical.split(",") if c.strip()))
    if remove_nuisance is not None:
        config.explain = replace(config.explain, remove_nuisance=remove_nuisance)
    if space is not None:
        if space not in ("styles", "codes"):
            raise InputError(f"--space must be 'styles' or 'codes', got {space!r}")
        config.fit = replace(config.fit, space="" if space == "codes" else space)
    if not config.cohort or not config.generator:
        raise InputError("give a config file or --cohort and --generator (and --out)")
    config.validate(FLAGS)
    result = run_pipeline(config)
    info(f"[green]✓[/green] report: {result.report}")


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the synthetic cohort and the run.")] = Path(
        "runs/demo"
    ),
    n: Annotated[int, typer.Option("--n", help="Synthetic patients.")] = 300,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the cohort and every stage.")] = 1,
) -> None:
    """The whole method on the embedded synthetic world, in a few minutes on a laptop.

    Synthesizes a cohort (unaligned photos with landmarks), aligns it, fine-tunes the shipped base generator
    briefly, embeds with the shipped encoder, cross-validates CoxNet, DeepSurv and clinical fusion, explains
    the health direction and writes the report.  Example: stylesurv demo --out runs/demo
    """
    from rich.table import Table

    from stylesurv.app.pipeline import DemoSettings, peak_memory_mb, run_demo
    from stylesurv.core.console import console

    result, oracle = run_demo(out, DemoSettings(n=n, seed=seed))
    times = Table(title="stage times")
    times.add_column("stage")
    times.add_column("seconds", justify="right")
    for stage in result.stages:
        times.add_row(stage.name, "cached" if stage.cached else f"{stage.seconds:.1f}")
    times.add_row("total", f"{sum(s.seconds for s in result.stages):.1f}")
    console.print(times)
    table = Table(title="C-index (5-fold CV) next to the oracle")
    table.add_column("model")
    table.add_column("Harrell's C", justify="right")
    for name, metrics in result.metrics.items():
        table.add_row(name, _format_c(metrics))
    table.add_row("oracle, face only", f"{oracle['face_only']:.3f}")
    table.add_row("oracle, face + clinical", f"{oracle['face_clinical']:.3f}")
    console.print(table)
    console.print(f"peak memory {peak_memory_mb():.0f} MB; report: {result.report}")


def _format_c(metrics: dict) -> str:
    value = metrics.get("harrell_c")
    return "-" if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    """Add `run` and `demo` to the main app."""
    app.command("run")(run)
    app.command("demo")(demo)
