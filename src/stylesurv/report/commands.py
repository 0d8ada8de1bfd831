"""`stylesurv report`: one self-contained HTML file from a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="Run folder written by `stylesurv run` or `stylesurv demo`.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output HTML file (default RUN_DIR/report.html).")
    ] = None,
    no_photos: Annotated[
        bool, typer.Option("--no-photos", help="Leave out every patient photo and reconstruction.")
    ] = False,
) -> None:
    """Write one self-contained HTML report (images inline, no network) from whatever a run folder holds,
    and say which sections are missing.

    Example: stylesurv report runs/demo --no-photos --out shareable.html
    """
    from stylesurv.core.console import info, warn
    from stylesurv.report.html import write_report

    path, data = write_report(run_dir, out, no_photos=no_photos)
    for title, expected in data.missing:
        warn(f"section '{title}' left out: {expected} not found in {run_dir}")
    info(f"[green]✓[/green] report written to {path}")


def register(app: typer.Typer) -> None:
    """Add the `report` command to the main app."""
    app.command("report")(report)
