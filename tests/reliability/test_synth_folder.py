"""`synth --out` replaces only a folder it made, and only while nothing in it was added or changed."""

from __future__ import annotations

import json

import pytest

from stylesurv.app.cli import main
from stylesurv.cohort.synthetic import make_world, write_world
from stylesurv.core.errors import InputError


def _write(out, seed=0, **kwargs):
    return write_world(make_world("cohort", 6, seed), out, resolution=32, fmt="png", workers=1, **kwargs)


def test_an_unchanged_synth_folder_is_replaced(tmp_path):
    out = _write(tmp_path / "c")
    _write(out, seed=1)
    assert json.loads((out / "synth.json").read_text())["seed"] == 1


@pytest.mark.parametrize("change", ["added", "edited"])
def test_a_synth_folder_the_user_changed_is_refused_and_kept(tmp_path, change):
    out = _write(tmp_path / "c")
    if change == "added":
        (out / "notes.txt").write_text("my notes")
        culprit = out / "notes.txt"
    else:
        culprit = out / "clinical.csv"
        culprit.write_text(culprit.read_text().replace(",1,", ",0,", 1) + "\n")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=rf"{culprit.name}: added or changed since `synth` wrote"):
        _write(out, seed=1)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    _write(out, seed=1, force=True)  # asked for: replaced
    assert not (out / "notes.txt").exists()


def test_the_synth_command_names_the_file_and_offers_force(tmp_path, capsys):
    out = tmp_path / "c"
    args = [
        "synth",
        "--kind",
        "cohort",
        "--n",
        "4",
        "--resolution",
        "32",
        "--format",
        "png",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    (out / "notes.txt").write_text("mine")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "notes.txt: added or changed" in err and "--force" in err
    assert (out / "notes.txt").read_text() == "mine"
    assert main([*args, "--force"]) == 0


def test_a_folder_synth_did_not_make_is_refused(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "data.csv").write_text("x")
    with pytest.raises(InputError, match="not a synthetic world folder"):
        _write(tmp_path / "c")
