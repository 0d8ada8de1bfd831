"""The `stylesurv` command line: parse, call the library, print.  Each stage registers its own commands.

Exit codes: 0 ok, 1 bad input (a StylesurvError, printed as one clear message), 2 usage error.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

from stylesurv import __version__
from stylesurv.core.console import console, set_verbosity
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
        console.print(f"[red]error:[/red] {exc}")
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
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
