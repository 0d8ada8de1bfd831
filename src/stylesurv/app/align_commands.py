"""`stylesurv align`: detect, align, QC and mask every photo of a cohort folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylesurv.core.lock import output_lock
from stylesurv.faces.folder import AlignConfig
from stylesurv.faces.qc import QCThresholds

DEFAULTS, QC_DEFAULTS = AlignConfig(), QCThresholds()
FLAGS = {
    "resolution": "--resolution",
    "upsample": "--upsample",
    "cnn": "--cnn",
    "detect_max_side": "--detect-size",
}


def register(app: typer.Typer) -> None:
    """Add the `align` command to the main app."""
    app.command("align")(align)


def align(
    cohort_dir: Annotated[
        Path, typer.Argument(help="Cohort folder: clinical.csv and photos/<patient_id>.jpg.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Aligned folder to write (created; reused to resume).")],
    resolution: Annotated[
        int, typer.Option("--resolution", help="Output side R in pixels (32-1024); 0: the --generator's.")
    ] = DEFAULTS.resolution,
    generator: Annotated[
        Path | None,
        typer.Option("--generator", help="Generator checkpoint whose resolution the photos are aligned to."),
    ] = None,
    landmarks: Annotated[
        Path | None,
        typer.Option(
            "--landmarks", help="CSV patient_id,x0,y0,...,x67,y67 in photo pixels, instead of dlib."
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Processes; 0 uses every CPU available.")] = 0,
    upsample: Annotated[
        int, typer.Option("--upsample", help="Times the detector doubles the photo (finds smaller faces).")
    ] = DEFAULTS.upsample,
    detect_size: Annotated[
        int, typer.Option("--detect-size", help="Photos are shrunk to this longer side for detection only.")
    ] = DEFAULTS.detect_max_side,
    cnn: Annotated[
        bool, typer.Option("--cnn", help="dlib's CNN face detector: slower, better on hard photos.")
    ] = DEFAULTS.cnn,
    max_upsample: Annotated[
        float,
        typer.Option("--max-upsample", help="QC: low_resolution when the face is magnified more than this."),
    ] = QC_DEFAULTS.max_upsample,
    max_pose: Annotated[
        float,
        typer.Option(
            "--max-pose", help="QC: extreme_pose above this nose-tip asymmetry (half eye distances)."
        ),
    ] = QC_DEFAULTS.max_pose_asymmetry,
    usable: Annotated[
        str,
        typer.Option("--usable", help="Comma-separated statuses later stages use (qc.csv `usable` column)."),
    ] = ",".join(QC_DEFAULTS.usable),
) -> None:
    """Detect faces, find 68 landmarks and align every photo of a cohort to R x R as FFHQ was aligned.

    Writes <patient_id>.png, landmarks.csv (aligned pixels), qc.csv and masks/<patient_id>.png into --out.
    Resumable: photos already aligned with the same settings are skipped.  Every patient gets a row in
    qc.csv (ok, no_face, multiple_faces, low_resolution, extreme_pose, unreadable); the command exits 0 and
    says how many photos failed QC.

    Example: stylesurv align cohort --out aligned --generator ffhq256.pkl --workers 2
    """
    from stylesurv.core.console import info
    from stylesurv.core.errors import InputError
    from stylesurv.faces.folder import align_cohort, safe_worker_count

    if not cohort_dir.is_dir():
        raise InputError(f"{cohort_dir}: cohort folder not found")
    try:
        thresholds = QCThresholds(
            max_upsample=max_upsample,
            max_pose_asymmetry=max_pose,
            usable=tuple(s.strip() for s in usable.split(",") if s.strip()),
        )
    except ValueError as exc:
        raise InputError(f"invalid QC option (--max-upsample, --max-pose, --usable): {exc}") from None
    config = AlignConfig(
        resolution=resolution, upsample=upsample, cnn=cnn, detect_max_side=detect_size, qc=thresholds
    )
    if generator is not None:
        from stylesurv.gan.checkpoint import generator_shape

        config = config.for_generator(generator_shape(generator)["img_resolution"])
    with output_lock(out):
        summary = align_cohort(
            cohort_dir,
            out,
            config.validate(FLAGS),
            landmarks_csv=landmarks,
            workers=safe_worker_count(workers),
        )
    info(summary.message())
