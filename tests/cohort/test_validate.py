"""`stylesurv validate`: a cohort with every bad input gets each one reported, exit 1, folder unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylesurv.app.cli import main
from stylesurv.cohort.table import validate_cohort
from stylesurv.core.console import set_verbosity
from tests.cohort.test_images import (
    write_bomb_png,
    write_corrupt_png,
    write_exif_rotated_jpeg,
    write_rgb16_png,
    write_truncated_jpeg,
)

# One row per rule: (CSV line, patient id, photo writer or None).  The header is line 1.
BAD_ROWS = [
    "P01;100;1;60;I",  # 2: clean
    "P02;;1;61;I",  # 3: time missing
    "P03;abc;0;62;I",  # 4: time not a number
    "P04;0;1;63;II",  # 5: time zero
    "P05;-5;1;64;II",  # 6: time negative
    "P06;inf;0;65;II",  # 7: time infinite
    "P07;50;2;66;II",  # 8: event not 0/1
    "P08;60;yes;67;III",  # 9: event word (warning); grayscale photo (note)
    "P01;70;0;68;III",  # 10: duplicate id
    ";80;1;69;III",  # 11: empty id
    "a/b;90;1;70;I",  # 12: path separator
    "x..y;90;1;71;I",  # 13: '..'
    "c\x07;90;1;72;I",  # 14: control character
    "P09;100;0;73;I",  # 15: no photo
    "P10;100;1;74;I",  # 16: truncated JPEG
    "P11;100;0;75;I",  # 17: text file named .png
    "P12;100;1;76;I",  # 18: decompression bomb header
    "P13;100;0;77;I",  # 19: CMYK JPEG (note)
    "P14;100;1;78;I",  # 20: 16-bit PNG (note)
    "P15;100;0;79;I",  # 21: palette PNG (note)
    "P16;100;1;80;I",  # 22: RGBA PNG (note)
    "P17;100;0;81;I",  # 23: EXIF-rotated JPEG (note)
    "P18;100;1;82;I",  # 24: corrupt PNG (bad checksum)
    "P19;12,5;false;83;I",  # 25: decimal comma ok; event word (warning)
    "P20;1",  # 26: wrong number of fields
    "P21;100;1;84;I",  # 27: two photos
]


def _rgb(size: int = 24, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def make_bad_cohort(root: Path) -> Path:
    photos = root / "photos"
    photos.mkdir(parents=True)
    text = "patient_id;time;event;age;stage\n" + "\n".join(BAD_ROWS) + "\n"
    (root / "clinical.csv").write_bytes(text.encode("utf-8-sig"))
    for pid in ["P01", "P02", "P03", "P04", "P05", "P06", "P07", "P19"]:
        _rgb(seed=int(pid[1:])).save(photos / f"{pid}.jpg")
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(photos / "P08.JPEG")
    write_truncated_jpeg(photos / "P10.jpg")
    (photos / "P11.png").write_text("this is not an image\n")
    write_bomb_png(photos / "P12.png")
    Image.new("CMYK", (16, 16), (0, 128, 255, 0)).save(photos / "P13.jpg")
    write_rgb16_png(photos / "P14.png", (1000, 30000, 65535))
    _rgb().convert("P").save(photos / "P15.png")
    _rgb().convert("RGBA").save(photos / "P16.png")
    write_exif_rotated_jpeg(photos / "P17.jpg")
    write_corrupt_png(photos / "P18.png")
    _rgb().save(photos / "P21.jpg")
    _rgb().save(photos / "P21.png")
    _rgb().save(photos / "ORPHAN.webp")
    (photos / "readme.txt").write_text("notes")
    return root


def make_clean_cohort(root: Path, n: int = 6) -> Path:
    photos = root / "photos"
    photos.mkdir(parents=True)
    lines = ["patient_id,time,event,age,sex"]
    for i in range(n):
        lines.append(f"S{i},{10 * (i + 1)},{i % 2},{50 + i},{'FM'[i % 2]}")
        _rgb(seed=i).save(photos / (f"S{i}.jpg" if i % 2 else f"S{i}.PNG"))
    (root / "clinical.csv").write_text("\n".join(lines) + "\n")
    return root


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _find(problems: list[dict], **where: object) -> list[dict]:
    return [p for p in problems if all(p[k] == v for k, v in where.items())]


# (severity, file, row, patient_id, words in the message) for every bad input of the cohort.
EXPECTED = [
    ("error", "clinical.csv", 3, "P02", "time is missing"),
    ("error", "clinical.csv", 4, "P03", "not a number"),
    ("error", "clinical.csv", 5, "P04", "time is zero"),
    ("error", "clinical.csv", 6, "P05", "negative"),
    ("error", "clinical.csv", 7, "P06", "infinite"),
    ("error", "clinical.csv", 8, "P07", "not 0 or 1"),
    ("warning", "clinical.csv", 9, "P08", "'yes' read as 1"),
    ("note", "photos/P08.JPEG", 9, "P08", "grayscale"),
    ("error", "clinical.csv", 10, "P01", "duplicate patient_id (first on row 2)"),
    ("error", "clinical.csv", 11, "", "empty"),
    ("error", "clinical.csv", 12, "a/b", "path separator"),
    ("error", "clinical.csv", 13, "x..y", "'..'"),
    ("error", "clinical.csv", 14, "c\x07", "control or invisible characters"),
    ("error", "clinical.csv", 15, "P09", "no photo"),
    ("error", "photos/P10.jpg", 16, "P10", "truncated"),
    ("error", "photos/P11.png", 17, "P11", "not an image file (content is text)"),
    ("error", "photos/P12.png", 18, "P12", "refused before decoding"),
    ("note", "photos/P13.jpg", 19, "P13", "CMYK"),
    ("note", "photos/P14.png", 20, "P14", "16-bit"),
    ("note", "photos/P15.png", 21, "P15", "palette"),
    ("note", "photos/P16.png", 22, "P16", "alpha"),
    ("note", "photos/P17.jpg", 23, "P17", "EXIF orientation 6 applied"),
    ("error", "photos/P18.png", 24, "P18", "corrupt"),
    ("warning", "clinical.csv", 25, "P19", "'false' read as 0"),
    ("error", "clinical.csv", 26, None, "row has 2 fields but the header has 5"),
    ("error", "photos/P21.jpg", 27, "P21", "several photos: photos/P21.jpg, photos/P21.png"),
    ("warning", "photos/ORPHAN.webp", None, None, "photo without a patient"),
    ("warning", "photos/readme.txt", None, None, "not an image file name"),
]


def test_every_bad_input_reported_exit_1_and_folder_unchanged(tmp_path: Path) -> None:
    cohort = make_bad_cohort(tmp_path / "cohort")
    before = _hashes(cohort)
    report_file = tmp_path / "report.json"
    assert main(["validate", str(cohort), "--json", str(report_file)]) == 1
    assert _hashes(cohort) == before

    report = json.loads(report_file.read_text())
    problems = report["problems"]
    for severity, file, row, pid, words in EXPECTED:
        matches = _find(problems, severity=severity, file=file, row=row, patient_id=pid)
        assert any(words in p["message"] for p in matches), (severity, file, row, pid, words, matches)
        assert all(p["fix"] for p in matches)
    # Nothing else is reported as an error: the clean rows stay clean.
    expected_errors = sum(e[0] == "error" for e in EXPECTED)
    assert report["counts"]["error"] == expected_errors
    assert not _find(problems, patient_id="P01", severity="error", row=2)
    assert not _find(problems, patient_id="P19", severity="error")
    # The summary covers the rows whose table values are valid: P01, P08, P09..P18, P19 and P21.
    summary = report["summary"]
    assert summary["n"] == 14
    assert summary["covariates"]["stage"]["kind"] == "categorical"
    assert summary["covariates"]["age"]["kind"] == "numeric"
    assert report["ok"] is False


def test_clean_cohort_exits_0_with_summary(tmp_path: Path) -> None:
    cohort = make_clean_cohort(tmp_path / "cohort")
    before = _hashes(cohort)
    report_file = tmp_path / "report.json"
    assert main(["validate", str(cohort), "--json", str(report_file)]) == 0
    assert _hashes(cohort) == before
    report = json.loads(report_file.read_text())
    # a clean table: the one cohort-level remark is that 6 patients are too few for a survival model
    assert report["ok"] is True
    assert [p["message"] for p in report["problems"]] == ["only 6 valid patient(s)"]
    summary = report["summary"]
    # times 10..60, events at 20, 40, 60: censored at 10, 30, 50.  Reverse KM: t=10: 5/6, t=30: 5/6 * 3/4 =
    # 0.625, t=50: 0.625 * 1/2 = 0.3125 <= 0.5, so the median follow-up is 50 days (by hand).
    assert (summary["n"], summary["events"], summary["censoring_rate"]) == (6, 3, 0.5)
    assert summary["median_followup_days"] == 50.0
    assert summary["covariates"]["sex"]["levels"] == {"F": 3, "M": 3}
    assert report["n_photos_checked"] == 6


def test_pool_and_single_thread_agree(tmp_path: Path) -> None:
    cohort = make_bad_cohort(tmp_path / "cohort")
    single = validate_cohort(cohort, workers=1)
    pooled = validate_cohort(cohort, workers=3)
    assert single.problems == pooled.problems
    assert single.to_dict() == pooled.to_dict()


def test_report_renders_as_rich_table(tmp_path: Path) -> None:
    from rich.console import Console

    report = validate_cohort(make_bad_cohort(tmp_path / "cohort"), workers=1)
    console = Console(record=True, width=200)
    console.print(report)
    text = console.export_text()
    assert "median follow-up (reverse KM)" in text and "FAILED: 18 error(s), 5 warning(s)" in text
    assert "photos/P12.png" in text and "c\\x07" in text  # control characters shown escaped


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), ("patient_id;time\nA;5\n", "missing required column 'event'")],
)
def test_unusable_table_exits_1(tmp_path: Path, content: str | None, message: str) -> None:
    (tmp_path / "photos").mkdir()
    if content is not None:
        (tmp_path / "clinical.csv").write_text(content)
    report_file = tmp_path.parent / f"{tmp_path.name}.json"
    assert main(["validate", str(tmp_path), "--json", str(report_file)]) == 1
    assert any(message in p["message"] for p in json.loads(report_file.read_text())["problems"])


def test_not_a_folder_and_quiet_mode(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tmp_path / "absent")]) == 1
    assert "not a folder" in capsys.readouterr().err.replace("\n", " ")
    cohort = make_bad_cohort(tmp_path / "cohort")
    try:
        assert main(["--quiet", "validate", str(cohort)]) == 1
    finally:
        set_verbosity(1)
    err = capsys.readouterr().err
    assert "error: photos/P12.png (clinical.csv:18): P12:" in err and "warning" not in err


def test_off_a_terminal_every_problem_is_one_line(tmp_path: Path, capsys) -> None:
    cohort = make_bad_cohort(tmp_path / "cohort")
    assert main(["validate", str(cohort)]) == 1
    lines = capsys.readouterr().err.splitlines()
    problems = [line for line in lines if line.startswith(("error: ", "warning: ", "note: "))]
    report = validate_cohort(cohort)
    assert "error(s) found" in problems.pop()  # the command's own last line
    assert len(problems) == len(report.problems) >= 2
    # each problem's file, row and patient are on its own line, for grep
    for problem in report.problems:
        assert any(problem.file in line and problem.message in line for line in problems)
    assert lines[-1].startswith("FAILED: ") or any(line.startswith("FAILED: ") for line in lines)


def test_photo_column_paths_and_links_stay_inside_the_cohort(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    (cohort / "photos").mkdir(parents=True)
    (cohort / "img").mkdir()
    _rgb().save(cohort / "img" / "a.jpg")
    _rgb().save(cohort / "photos" / "B.jpg")  # used through the column: not an orphan
    _rgb().save(tmp_path / "outside.jpg")
    (cohort / "photos" / "L.jpg").symlink_to(tmp_path / "outside.jpg")
    (cohort / "clinical.csv").write_text(
        "patient_id,time,event,photo\n"
        "A,1,0,img/a.jpg\n"
        "B,2,1,photos/B.jpg\n"
        "C,3,0,../outside.jpg\n"
        f"D,4,1,{tmp_path / 'outside.jpg'}\n"
        "E,5,0,img/missing.jpg\n"
        "L,6,1,\n"
        "F,7,0,img/\x01a.jpg\n"
    )
    report = validate_cohort(cohort, workers=1)
    got = [(p.severity, p.file, p.row, p.patient_id, p.message) for p in report.problems]
    assert got == [
        ("error", "clinical.csv", 4, "C", "photo path '../outside.jpg' leaves the cohort folder"),
        (
            "error",
            "clinical.csv",
            5,
            "D",
            f"photo path '{tmp_path / 'outside.jpg'}' leaves the cohort folder",
        ),
        ("error", "clinical.csv", 6, "E", "photo 'img/missing.jpg' not found"),
        ("error", "photos/L.jpg", 7, "L", "photo links out of the cohort folder"),
        ("error", "clinical.csv", 8, "F", "photo path contains control characters"),
        ("warning", "clinical.csv", None, None, "only 7 valid patient(s)"),
    ]
    assert report.n_photos_checked == 2
