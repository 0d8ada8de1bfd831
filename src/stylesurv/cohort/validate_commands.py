"""`stylesurv validate COHORT_DIR`: check a cohort's table and photos, print every problem, change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `validate` command to the main app."""
    app.command("validate")(validate)


def validate(
    cohort_dir: Annotated[Path, typer.Argument(help="Cohort folder with clinical.csv and photos/.")],
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report as JSON to this file.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Threads checking photos (0: one per CPU, at most 8).")
    ] = 0,
) -> None:
    """Check clinical.csv and the photos; list every problem with file, row, patient and fix.

    Exits 1 if any error is found, 0 otherwise (warnings and notes allowed).
    Nothing in the cohort folder is modified.

    Example: stylesurv validate my_cohort --json validation.json
    """
    from stylesurv.cohort.table import validate_cohort
    from stylesurv.core.atomic import write_text_atomic
    from stylesurv.core.console import console, verbosity
    from stylesurv.core.errors import InputError

    report = validate_cohort(cohort_dir, workers=workers or None)
    if json_file is not None:
        write_text_atomic(json_file, report.to_json() + "\n")
    if verbosity() >= 1 and console.is_terminal:
        console.print(report)
    else:  # off a terminal (a log, a pipe) one problem per line; quiet: the errors only
        shown = report.lines() if verbosity() >= 1 else [p.line() for p in report.errors]
        for line in shown:
            console.print(line, markup=False)
    if not report.ok:
        raise InputError(f"{cohort_dir}: {len(report.errors)} error(s) found; fix them and validate again.")
