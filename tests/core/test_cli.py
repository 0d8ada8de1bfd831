"""The CLI's global contract: --version, exit codes 0 / 1 / 2 (stylesurv.cli.main)."""

from stylesurv import __version__
from stylesurv.app.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"stylesurv {__version__}"


def test_usage_errors_exit_2():
    assert main(["--no-such-option"]) == 2
    assert main(["validate"]) == 2  # missing COHORT_DIR
    assert main(["no-such-command"]) == 2


def test_bad_input_exits_1_with_message(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err


def test_help_lists_examples(capsys):
    assert main(["validate", "--help"]) == 0
    assert "Example" in capsys.readouterr().out
