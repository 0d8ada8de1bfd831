"""One rich console for the whole package, its verbosity, and the progress bar every long loop uses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def _make_console() -> Console:
    """stderr; off a terminal (a log file, CI, a pipe) lines are never wrapped, so one message stays on
    one line for grep."""
    if Console(stderr=True).is_terminal:
        return Console(stderr=True, highlight=False)
    return Console(stderr=True, highlight=False, width=400, soft_wrap=True)


console = _make_console()
_verbosity = 1  # 0 quiet, 1 normal, 2 verbose


def set_verbosity(level: int) -> None:
    """Set 0 (quiet: errors only), 1 (normal) or 2 (verbose)."""
    global _verbosity
    _verbosity = level


def verbosity() -> int:
    return _verbosity


def info(message: str) -> None:
    """Print a normal-level message to stderr."""
    if _verbosity >= 1:
        console.print(message)


def debug(message: str) -> None:
    """Print a message only with --verbose."""
    if _verbosity >= 2:
        console.print(f"[dim]{message}[/dim]")


def warn(message: str) -> None:
    """Print a warning (shown unless --quiet)."""
    if _verbosity >= 1:
        console.print(f"[yellow]warning:[/yellow] {message}")


def error(message: str) -> None:
    """Print ``message`` as an error, always (brackets in it are text, not markup: paths, TOML sections)."""
    from rich.text import Text

    console.print(Text.assemble(("error:", "red"), " ", str(message)))


def make_progress(*extra_columns: TextColumn) -> Progress:
    """A progress bar with count, elapsed time and ETA; disabled in quiet mode."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=console,
        disable=_verbosity < 1,
        transient=False,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (disabled in quiet mode)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
