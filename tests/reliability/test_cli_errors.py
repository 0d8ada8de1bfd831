"""Every failure reaches the user as one line with an exit code: bad input 1, usage 2, a bug 3 with a log."""

from __future__ import annotations

import errno

import pytest

from stylesurv.app.cli import main


def test_an_unexpected_error_is_one_line_and_a_log_with_the_traceback(monkeypatch, capsys, tmp_path):
    import stylesurv.cohort.table as table

    def broken(*args, **kwargs):
        raise RuntimeError("something internal went wrong")

    monkeypatch.setattr(table, "validate_cohort", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["validate", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "unexpected RuntimeError: something internal went wrong" in err
    logs = list(tmp_path.glob("stylesurv-error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    text = logs[0].read_text()
    assert "Traceback" in text and "broken" in text and "command:" in text


def test_a_full_disk_is_a_clear_message_not_a_traceback(monkeypatch, capsys, tmp_path):
    import stylesurv.cohort.table as table

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.json"))

    monkeypatch.setattr(table, "validate_cohort", full)
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'out.json'}: No space left on device" in err and "Traceback" not in err


def test_brackets_in_a_message_are_text_not_markup(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[embed.project]\nstepz = 1\n")
    assert main(["run", str(config), "--cohort", str(tmp_path), "--generator", str(tmp_path / "g")]) == 1
    assert "run.toml: [embed.project] unknown setting(s) stepz" in capsys.readouterr().err


def test_run_out_on_an_existing_file_is_refused(tmp_path):
    from stylesurv.core.errors import InputError
    from stylesurv.core.rundir import RunDir

    occupied = tmp_path / "occupied"
    occupied.write_text("a file")
    with pytest.raises(InputError, match="is a file, not a run folder"):
        RunDir(occupied)
    assert occupied.read_text() == "a file"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--steps", "-5", "--steps must not be negative"),
        ("--seed", "-1", "--seed must not be negative"),
    ],
)
def test_run_refuses_absurd_values_before_any_stage(tmp_path, capsys, flag, value, message):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    (cohort / "clinical.csv").write_text("patient_id,time,event\nP1,5,1\n")
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--cohort",
            str(cohort),
            "--generator",
            str(tmp_path / "g.pkl"),
            "--out",
            str(out),
            flag,
            value,
        ]
    )
    assert code == 1
    assert message in capsys.readouterr().err
    assert not (out / "aligned").exists()


def test_no_raw_traceback_for_a_missing_generator(tmp_path, capsys):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    (cohort / "clinical.csv").write_text("patient_id,time,event\nP1,5,1\n")
    assert main(["run", "--cohort", str(cohort), "--generator", str(tmp_path / "none.pkl")]) == 1
    err = capsys.readouterr().err
    assert "none.pkl: generator checkpoint not found" in err and "Traceback" not in err
