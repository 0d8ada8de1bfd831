"""The `stylesurv` command line: parse, call the library, print.  Each stage registers its own commands.

Exit codes: 0 ok, 1 bad input (a StylesurvError, or a file system error such as a full disk or a read-only
folder, printed as one clear message), 2 usage error, 3 an unexpected error: one line naming the log file
that holds its traceback (a user never sees a raw traceback; a bug report attaches the log), 130 interrupted.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import typer

from stylesurv import __version__
from stylesurv.core.console import console, error, set_verbosity
from stylesurv.core.errors import StylesurvError

# Modules that define `register(app: typer.Typer) -> None`, in the order their commands appear in --help.
COMMAND_MODULES = (
    "stylesurv.cohort.synth_commands",
    "stylesurv.cohort.validate_commands",
    "stylesurv.app.align_commands",
    "stylesurv.gan.commands",
    "stylesurv.gan.train_commands",
    "stylesurv.invert.commands",
    "stylesurv.survival.commands",
    "stylesurv.app.explain_commands",
    "stylesurv.report.commands",
    "stylesurv.app.predict_commands",
    "stylesurv.app.run_commands",
)

app = typer.Typer(
    name="stylesurv",
    help=(
        "Survival prediction from portrait photos through StyleGAN2 latent embeddings.\n\n"
        "Example: stylesurv synth --kind cohort --n 300 --seed 1 --out cohort && stylesurv validate cohort"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stylesurv {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors; no progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail."),
) -> None:
    set_verbosity(0 if quiet else 2 if verbose else 1)


for _name in COMMAND_MODULES:
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name).register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; a StylesurvError becomes exit code 1 with a readable message."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    try:
        code = app(args=argv, standalone_mode=False)
    except StylesurvError as exc:
        error(str(exc))
        return 1
    except NoArgsIsHelpError as exc:  # a bare group: its help was asked for, not an error
        exc.show()
        return 0
    except ClickException as exc:  # usage errors (exit 2) and bad parameters
        exc.show()
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        console.print("aborted")
        return 130
    except MemoryError:
        error("out of memory; use smaller batches or a machine with more memory")
        return 1
    except OSError as exc:  # the file system said no: full disk, read-only folder, permissions, ...
        where = f"{exc.filename}: " if exc.filename else ""
        error(f"{where}{exc.strerror or exc}; nothing already finished was changed")
        return 1
    except Exception as exc:  # a bug: one line for the user, the traceback in a log file
        log = crash_log(exc)
        error(
            f"unexpected {type(exc).__name__}: {str(exc)[:200]} (a bug; the details are in {log}, "
            "please attach it to a report)"
        )
        return 3
    return code if isinstance(code, int) else 0


def crash_log(exc: BaseException) -> Path:
    """Write the traceback of ``exc`` with the command line and versions to a log file; return its path."""
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(exc))
    header = f"stylesurv {__version__}, python {sys.version.split()[0]}\ncommand: {' '.join(sys.argv)}\n\n"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    fd, name = tempfile.mkstemp(prefix=f"stylesurv-error-{stamp}-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(header + text)
    return Path(name)


if __name__ == "__main__":
    sys.exit(main())
