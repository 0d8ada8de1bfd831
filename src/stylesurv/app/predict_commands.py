"""`stylesurv predict`: score new photos with a finished run (risk, group, survival curve, health edits)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def predict(
    photos: Annotated[list[Path], typer.Argument(help="Photos to score (jpg, png, webp, tif).")],
    run: Annotated[Path, typer.Option("--run", help="A finished run folder (`stylesurv run` or `demo`).")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write predictions.csv/.json and per-photo PNGs (aligned, edits, survival)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Survival model of the run (default: coxnet, else the first)."),
    ] = None,
    landmarks: Annotated[
        Path | None,
        typer.Option(
            "--landmarks", help="CSV patient_id,x0,y0,...,x67,y67 in photo pixels (id: file name or stem)."
        ),
    ] = None,
    allow_flagged: Annotated[
        bool,
        typer.Option("--allow-flagged", help="Also score photos QC flags as low_resolution or extreme_pose."),
    ] = False,
    upsample: Annotated[
        int | None,
        typer.Option("--upsample", help="Times the detector doubles the photo (default: the run's setting)."),
    ] = None,
    cnn: Annotated[
        bool, typer.Option("--cnn", help="dlib's CNN face detector: slower, better on hard photos.")
    ] = False,
    max_sd: Annotated[
        float,
        typer.Option("--max-sd", help="Edits span -max-sd .. +max-sd cohort SDs of the health attribute."),
    ] = 2.0,
    edit_steps: Annotated[int, typer.Option("--edit-steps", help="Images in an edit strip (odd, >= 3).")] = 5,
) -> None:
    """Align, embed and score new photos exactly as the run did for its cohort.

    Prints each photo's risk score, risk group (tertiles of the run's out-of-fold risks), health attribute
    and median predicted survival.  A photo the run's QC would reject (no face, unreadable, ...) is named
    with the reason; the others are still scored and written, and the command then exits 1.

    Example: stylesurv predict me.jpg grandpa.png --run runs/demo --out predictions
    """
    from stylesurv.app.predict import load_predictor, predict_photos, write_predictions
    from stylesurv.core.console import console
    from stylesurv.core.errors import InputError
    from stylesurv.explain.edit import symmetric_alphas

    try:
        symmetric_alphas(max_sd, edit_steps)
    except ValueError as exc:
        raise InputError(f"--max-sd / --edit-steps: {exc}") from None
    predictor = load_predictor(run, model)
    predictions = predict_photos(
        predictor, photos, landmarks, allow_flagged, max_sd, edit_steps, upsample=upsample, cnn=cnn
    )
    console.print(predictions.table())
    if out is not None:
        write_predictions(predictions, out)
    failed = predictions.failed
    if failed:
        raise InputError(
            f"{len(failed)} of {len(predictions.photos)} photo(s) could not be scored: "
            + "; ".join(p.error() for p in failed)
        )


def register(app: typer.Typer) -> None:
    """Add `predict` to the main app."""
    app.command("predict")(predict)
