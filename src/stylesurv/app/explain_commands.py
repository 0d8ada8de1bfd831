"""`stylesurv explain`: the health direction, edited faces, attribution and nuisance analysis of a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylesurv.core.lock import output_lock
from stylesurv.explain.config import ExplainConfig

DEFAULTS = ExplainConfig()  # every default below is the config's
FLAGS = {name: "--" + name.replace("_", "-") for name in DEFAULTS.to_json()}  # config field -> flag


def explain(
    bundle: Annotated[Path, typer.Option("--bundle", help="Survival model bundle folder (`stylesurv fit`).")],
    generator: Annotated[Path, typer.Option("--generator", help="Generator checkpoint of the latents.")],
    latents: Annotated[Path, typer.Option("--latents", help="Latents file (`stylesurv embed`).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (replaced atomically).")],
    aligned: Annotated[
        Path | None,
        typer.Option(
            "--aligned", help="Aligned folder (masks/, landmarks.csv): attribution and photo probes."
        ),
    ] = None,
    truth: Annotated[
        Path | None, typer.Option("--truth", help="A synthetic world's truth.csv: probe its true factors.")
    ] = None,
    remove_nuisance: Annotated[
        bool,
        typer.Option(
            "--remove-nuisance", help="Refit on codes without the nuisance directions (needs --cohort)."
        ),
    ] = False,
    cohort: Annotated[
        Path | None,
        typer.Option(
            "--cohort",
            help="Cohort folder (clinical.csv): outcomes to refit the model on the face subspace (with "
            "--aligned) and for --remove-nuisance.",
        ),
    ] = None,
    counterfactual: Annotated[
        Path | None,
        typer.Option(
            "--counterfactual",
            help="With --remove-nuisance: a run folder whose networks re-embed its patients' photos with "
            "background and clothing recoloured; the span of the code changes is removed (not probes).",
        ),
    ] = None,
    patients: Annotated[
        str, typer.Option("--patients", help="Comma-separated patient ids to edit (default: 4, spread out).")
    ] = "",
    max_sd: Annotated[
        float, typer.Option("--max-sd", help="Edits span -max-sd .. +max-sd attribute SDs.")
    ] = DEFAULTS.max_sd,
    steps: Annotated[int, typer.Option("--steps", help="Columns of the edit grids (odd).")] = DEFAULTS.steps,
    random_directions: Annotated[
        int, typer.Option("--random-directions", help="Random directions of the attribution baseline.")
    ] = DEFAULTS.random_directions,
    attribution_patients: Annotated[
        int, typer.Option("--attribution-patients", help="Patients whose image change is measured.")
    ] = DEFAULTS.attribution_patients,
    face_threshold: Annotated[
        float,
        typer.Option(
            "--face-threshold",
            help="Face share of the image change a latent direction needs to count as face-local (0-1).",
        ),
    ] = DEFAULTS.face_threshold,
    face_patients: Annotated[
        int,
        typer.Option("--face-patients", help="Patients whose generator Jacobians define the face subspace."),
    ] = DEFAULTS.face_patients,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = DEFAULTS.seed,
) -> None:
    """Health direction of a survival model in latent space, faces edited along it, where in the image it
    acts, and how it relates to nuisance attributes; writes images, CSVs and summary.json into --out.

    Example: stylesurv explain --bundle run/fit/coxnet --generator run/finetune/generator.safetensors
    --latents run/embed/latents.npz --aligned run/aligned --out run/explain
    """
    from stylesurv.core.errors import InputError

    options = ExplainConfig(
        max_sd=max_sd,
        steps=steps,
        patients=[p.strip() for p in patients.split(",") if p.strip()],
        random_directions=random_directions,
        attribution_patients=attribution_patients,
        face_patients=face_patients,
        face_threshold=face_threshold,
        seed=seed,
    ).validate(FLAGS)
    if remove_nuisance and cohort is None:
        raise InputError("--remove-nuisance needs --cohort DIR (the outcomes to refit the model on)")
    if remove_nuisance and aligned is None and truth is None and counterfactual is None:
        raise InputError(
            "--remove-nuisance needs nuisance directions: --aligned DIR, --truth CSV or --counterfactual RUN"
        )
    if counterfactual is not None and not remove_nuisance:
        raise InputError("--counterfactual picks the nuisance directions of --remove-nuisance; add that flag")
    from rich.table import Table

    from stylesurv.cohort.table import load_clinical
    from stylesurv.core.console import console, info
    from stylesurv.core.latents import load_latents
    from stylesurv.gan.checkpoint import load_generator
    from stylesurv.studies.explain_stage import ExplainInputs, explain_stage
    from stylesurv.survival.bundle import load_bundle

    swapped = None
    if remove_nuisance and counterfactual is not None:
        from stylesurv.app.counterfactual import embed_run_counterfactuals

        swapped = embed_run_counterfactuals(counterfactual, seed=seed)
    inputs = ExplainInputs(
        bundle=load_bundle(bundle),
        generator=load_generator(generator).eval(),
        latents=load_latents(latents),
        paths={"bundle": str(bundle), "generator": str(generator), "latents": str(latents)},
        aligned=aligned,
        truth=truth,
        outcomes=load_clinical(cohort) if cohort is not None else None,
        swapped=swapped,
        remove_nuisance=("counterfactual" if swapped is not None else "auto") if remove_nuisance else "",
    )
    with output_lock(out):
        result = explain_stage(inputs, options, out)
    info(f"[green]✓[/green] explain outputs in {out}")
    table = Table(title=f"explain: {out}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for measure, value in result.table():
        table.add_row(measure, value)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the `explain` command to the main app."""
    app.command("explain")(explain)
