"""`stylesurv fit`: nested CV of a survival model on latent codes, photos or clinical data; a model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylesurv.core.lock import output_lock
from stylesurv.survival.config import FitConfig

DEFAULTS = FitConfig()
FLAGS = {
    "model": "--model", "fusion": "--fusion", "clinical": "--clinical", "space": "--space",
    "wplus_reduce": "--wplus-reduce", "pca": "--pca", "l1_ratio": "--l1-ratio", "folds": "--folds",
    "repeats": "--repeats", "permutations": "--permutations", "auc_times": "--times", "tau": "--tau",
    "face_threshold": "--face-threshold", "seed": "--seed", "latents": "--latents", "aligned": "--aligned",
    "face_subspace": "--face-subspace",
}  # fmt: skip


def fit(
    cohort: Annotated[Path, typer.Option("--cohort", help="Cohort folder holding clinical.csv (outcomes).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: bundle, cv_results.json, oof_risk.csv.")],
    latents: Annotated[
        Path | None, typer.Option("--latents", help="Latents NPZ from `stylesurv embed`.")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="coxnet | coxph | deepsurv | rsf | gbsa | cnn | clinical.")
    ] = "coxnet",
    clinical: Annotated[
        str,
        typer.Option(
            "--clinical", help="Comma-separated clinical covariates; with an image model: fusion (--fusion)."
        ),
    ] = "",
    fusion: Annotated[
        str,
        typer.Option(
            "--fusion",
            help="With --clinical: late (image score + covariates) | joint (coxnet/coxph on codes and "
            "unpenalised covariates together: the health direction adjusted for them).",
        ),
    ] = "late",
    l1_ratio: Annotated[
        float, typer.Option("--l1-ratio", help="CoxNet elastic-net mixing: 1 lasso, near 0 ridge.")
    ] = DEFAULTS.l1_ratio,
    space: Annotated[
        str,
        typer.Option(
            "--space",
            help="w | wplus | styles (StyleSpace channels; edits can stay on the face) "
            "(default: the richest W space the latents hold).",
        ),
    ] = DEFAULTS.space,
    generator: Annotated[
        Path | None,
        typer.Option("--generator", help="With --space styles: the generator whose styles to fit on."),
    ] = None,
    face_subspace: Annotated[
        Path | None,
        typer.Option(
            "--face-subspace",
            help="face_subspace.npz of `stylesurv explain` (same latent space): fit a face-bound model, on "
            "codes kept to the directions whose image change stays in the face.",
        ),
    ] = None,
    face_threshold: Annotated[
        float | None,
        typer.Option(
            "--face-threshold", help="With --face-subspace: its face-share threshold (default: its own)."
        ),
    ] = DEFAULTS.face_threshold,
    wplus_reduce: Annotated[
        str, typer.Option("--wplus-reduce", help="W+ codes: flatten | groups (layer-group means).")
    ] = DEFAULTS.wplus_reduce,
    pca: Annotated[
        int | None, typer.Option("--pca", help="PCA components of the codes; 0 = none (default per model).")
    ] = DEFAULTS.pca,
    folds: Annotated[int, typer.Option("--folds", help="Outer CV folds.")] = DEFAULTS.folds,
    repeats: Annotated[int, typer.Option("--repeats", help="Outer CV repeats.")] = DEFAULTS.repeats,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every split and model.")] = DEFAULTS.seed,
    permutations: Annotated[
        int,
        typer.Option("--permutations", help="Outcome-shuffled reruns of the whole CV (permutation test)."),
    ] = DEFAULTS.permutations,
    times: Annotated[
        str,
        typer.Option("--times", help="Comma-separated days for the time-dependent AUC (default: quartiles)."),
    ] = "",
    tau: Annotated[
        float | None, typer.Option("--tau", help="Uno's C truncation time in days (default: 80th pct).")
    ] = DEFAULTS.tau,
    aligned: Annotated[
        Path | None, typer.Option("--aligned", help="Aligned photo folder (for --model cnn).")
    ] = None,
) -> None:
    """Cross-validate a survival model (nested, leak-free), print the metrics, save a bundle refitted on all.

    Example: stylesurv fit --latents run/embed/latents.npz --cohort cohort --model coxnet --clinical age,stage
    --out run/fit/coxnet
    """
    from stylesurv.core.console import console, info
    from stylesurv.survival.bundle import fit_files

    config = FitConfig(
        clinical=tuple(c.strip() for c in clinical.split(",") if c.strip()),
        space=space, wplus_reduce=wplus_reduce, pca=pca, l1_ratio=l1_ratio, folds=folds, repeats=repeats,
        permutations=permutations, auc_times=_parse_times(times), tau=tau, face_threshold=face_threshold,
        seed=seed,
    )  # fmt: skip
    with output_lock(out):
        results, bundle = fit_files(
            cohort, out, model, config, fusion, latents=latents, aligned=aligned, generator=generator,
            face_subspace=face_subspace, names=FLAGS,
        )  # fmt: skip
    console.print(results.table())
    info(f"[green]✓[/green] bundle {bundle.model_name} written to {out}")


def _parse_times(text: str) -> tuple[float, ...]:
    from stylesurv.core.errors import InputError

    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise InputError(f"--times must be comma-separated numbers of days, got {text!r}") from None


def register(app: typer.Typer) -> None:
    """Add `fit` to the main app."""
    app.command("fit")(fit)
