"""`stylesurv synth`: write a synthetic cohort or population folder with known truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder (replaced atomically).")],
    kind: Annotated[
        str, typer.Option("--kind", help="population (healthier, no outcomes) or cohort.")
    ] = "cohort",
    n: Annotated[int, typer.Option("--n", help="Number of subjects.")] = 300,
    resolution: Annotated[int, typer.Option("--resolution", help="Aligned size: 32, 64, 128 or 256.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="The same seed writes the same files.")] = 0,
    unaligned: Annotated[
        bool, typer.Option("--unaligned", help="Larger photos, face anywhere; landmarks.csv in photo pixels.")
    ] = False,
    confounded: Annotated[
        bool, typer.Option("--confounded", help="Background follows the outcome in a training split.")
    ] = False,
    face_bound: Annotated[
        bool,
        typer.Option(
            "--face-bound-effects/--effects-beyond-face",
            help="Health factors change the face only (cachexia hollows without narrowing the outline or "
            "neck, pallor spares neck, ears and body), or also the outline, neck and ears.",
        ),
    ] = True,
    fmt: Annotated[
        str, typer.Option("--format", help="Photo format: jpg (subject's JPEG quality) or png.")
    ] = "jpg",
    workers: Annotated[int, typer.Option("--workers", help="Render processes (0: automatic).")] = 0,
    preview: Annotated[
        Path | None, typer.Option("--preview", help="Also save a contact sheet PNG here.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an earlier synth folder even if files were added or changed."),
    ] = False,
) -> None:
    """Render a synthetic world of portraits with hidden factors, survival and oracle C-indices.

    Example: stylesurv synth --kind cohort --n 2000 --seed 1 --out cohort --preview sheet.png
    """
    from stylesurv.cohort.synthetic import check_resolution, contact_sheet, make_world, write_world
    from stylesurv.core.atomic import write_bytes_atomic
    from stylesurv.core.console import info

    check_resolution(resolution)
    world = make_world(kind, n, seed, confounded=confounded, beyond_face=not face_bound)
    folder = write_world(
        world, out, resolution=resolution, unaligned=unaligned, fmt=fmt, workers=workers, force=force
    )
    info(f"wrote {n} {kind} subjects to {folder}")
    if world.oracle is not None:
        info(
            f"oracle C-index: face-only {world.oracle['face_only']:.3f}, "
            f"face+clinical {world.oracle['face_clinical']:.3f} ({world.oracle['events']} events)"
        )
    if preview is not None:
        import io

        buf = io.BytesIO()
        contact_sheet(world).save(buf, format="PNG")
        write_bytes_atomic(preview, buf.getvalue())
        info(f"preview: {preview}")


def register(app: typer.Typer) -> None:
    """Add `synth` to the main app."""
    app.command("synth")(synth)
