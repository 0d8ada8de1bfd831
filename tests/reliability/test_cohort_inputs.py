"""Bad or odd cohorts: each a named problem (file, row, patient, fix), never a traceback or a silent pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylesurv.app.cli import main
from stylesurv.cohort.synthetic import make_world, write_world
from stylesurv.cohort.table import validate_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return write_world(
        make_world("cohort", 6, 0), tmp_path_factory.mktemp("c") / "c", 32, fmt="png", workers=1
    )


def _edited(cohort: Path, tmp_path: Path, edit) -> Path:
    import shutil

    out = tmp_path / "edited"
    shutil.copytree(cohort, out)
    lines = (out / "clinical.csv").read_text().splitlines()
    (out / "clinical.csv").write_text("\n".join(edit(lines)) + "\n")
    return out


def _set(lines: list[str], column: str, values: list[str]) -> list[str]:
    index = lines[0].split(",").index(column)
    out = [lines[0]]
    for line, value in zip(lines[1:], values, strict=False):
        fields = line.split(",")
        fields[index] = value
        out.append(",".join(fields))
    return out


def _problems(folder: Path) -> list[tuple[str, int | None, str | None, str]]:
    return [(p.severity, p.row, p.patient_id, p.message) for p in validate_cohort(folder, workers=1).problems]


def test_a_duplicate_column_is_named_not_a_crash(cohort, tmp_path, capsys):
    folder = _edited(cohort, tmp_path, lambda lines: [lines[0] + ",age"] + [x + ",1" for x in lines[1:]])
    assert main(["validate", str(folder)]) == 1
    assert "clinical.csv:1: column 'age' appears more than once" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["１２", "1_000", "٣٤", "12abc"])
def test_numbers_are_ascii_numbers(cohort, tmp_path, text):
    folder = _edited(cohort, tmp_path, lambda lines: _set(lines, "time", [text]))
    assert ("error", 2, "S0", f"time {text!r} is not a number") in _problems(folder)


def test_absurd_times_are_flagged(cohort, tmp_path):
    folder = _edited(cohort, tmp_path, lambda lines: _set(lines, "time", ["1e300"]))
    assert ("warning", 2, "S0", "time 1e+300 days is more than 100 years") in _problems(folder)


def test_too_few_patients_no_events_and_identical_times_are_warned(cohort, tmp_path):
    folder = _edited(cohort, tmp_path, lambda lines: _set(_set(lines, "event", ["0"] * 6), "time", ["5"] * 6))
    messages = [m for _, _, _, m in _problems(folder)]
    assert "only 6 valid patient(s)" in messages
    assert "no events: every patient is censored" in messages
    assert "every follow-up time is 5" in messages


def test_one_photo_for_two_patients_is_warned(cohort, tmp_path):
    def shared(lines):
        return [lines[0] + ",photo"] + [x + ",photos/S0.png" for x in lines[1:]]

    folder = _edited(cohort, tmp_path, shared)
    assert ("warning", 3, "S1", "the same photo file as patient S0") in _problems(folder)


@pytest.mark.parametrize("pid", ["P 01", "Zoë", "\u202eP01", "P\u200b01"])
def test_unsafe_ids_are_refused_by_validate_with_their_row(cohort, tmp_path, pid):
    folder = _edited(cohort, tmp_path, lambda lines: _set(lines, "patient_id", [pid]))
    assert any(s == "error" and row == 2 and "patient_id" in m for s, row, _, m in _problems(folder))


def test_a_clinical_table_linked_from_outside_is_warned(cohort, tmp_path):
    import shutil

    folder = tmp_path / "linked"
    shutil.copytree(cohort, folder)
    (folder / "clinical.csv").rename(tmp_path / "outside.csv")
    (folder / "clinical.csv").symlink_to(tmp_path / "outside.csv")
    assert any("clinical.csv links out of the cohort folder" in m for _, _, _, m in _problems(folder))


def test_gan_convert_into_a_folder_names_it(tmp_path, capsys):
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "rosinality_ref" / "checkpoint.pt"
    (tmp_path / "out").mkdir()
    assert main(["gan", "convert", str(fixture), str(tmp_path / "out")]) == 1
    assert f"{tmp_path / 'out'} is a folder; give the file to write" in capsys.readouterr().err


def test_embed_on_photos_that_were_never_aligned_says_to_align(tmp_path, capsys):
    from stylesurv.app.pipeline import BASE_GENERATOR

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.txt").write_text("no photos here")
    assert (
        main(
            [
                "embed",
                str(tmp_path / "photos"),
                "--generator",
                str(BASE_GENERATOR),
                "--out",
                str(tmp_path / "l.npz"),
            ]
        )
        == 1
    )
    assert "stylesurv align" in capsys.readouterr().err


def test_an_animated_photo_is_noted_first_frame_used(tmp_path):
    from PIL import Image

    from stylesurv.cohort.images import check_image

    frames = [Image.new("RGB", (64, 64), (i * 40, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert "animated image of 3 frames: the first frame is used" in check_image(tmp_path / "a.gif").notes
