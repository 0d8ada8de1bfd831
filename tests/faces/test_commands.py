"""`stylesurv align` on a small cohort: every patient gets a QC row, outputs follow the layout, it resumes."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylesurv.app.cli import main
from stylesurv.core.aligned import read_qc, usable_patients
from stylesurv.faces.detect import detect_faces
from stylesurv.faces.folder import AlignConfig, align_cohort, landmarks_table, read_landmarks_csv
from stylesurv.faces.qc import QCThresholds
from tests.faces.photos import place, rescale

R = 256
EXPECTED = {
    "P01": "ok",  # the astronaut without the space suit that gives a false second detection
    "P02": "multiple_faces",  # the whole astronaut photo
    "P03": "no_face",  # a smooth gradient
    "P04": "unreadable",  # text saved as .jpg
    "P05": "low_resolution",  # the astronaut at half size in a larger photo: a ~86 px face square for R = 256
    "P06": "unreadable",  # listed in clinical.csv without a photo
    "P07": "ok",  # P01 stored rotated, with an EXIF orientation tag that turns it upright
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    photos = root / "photos"
    photos.mkdir()
    upright = np.ascontiguousarray(astronaut[:300])
    Image.fromarray(upright).save(photos / "P01.png")
    Image.fromarray(astronaut).save(photos / "P02.jpg", quality=95)
    gradient = np.linspace(0, 255, 300 * 400).reshape(300, 400).astype(np.uint8)
    Image.fromarray(gradient).save(photos / "P03.png")  # grayscale: also exercises the RGB conversion
    (photos / "P04.jpg").write_text("this is not a photo\n")
    Image.fromarray(place(rescale(astronaut, 0.5), (480, 560), (150, 200))).save(
        photos / "P05.webp", quality=95
    )
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(
        photos / "P07.jpg", quality=95, exif=exif
    )
    rows = [f"{pid},{100 + i},{i % 2}" for i, pid in enumerate(EXPECTED)]
    (root / "clinical.csv").write_text("patient_id,time,event\n" + "\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def aligned(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "aligned"
    assert main(["align", str(cohort), "--out", str(out), "--resolution", str(R), "--workers", "1"]) == 0
    return out


def test_every_patient_gets_a_qc_row_with_the_right_status(aligned: Path) -> None:
    rows = read_qc(aligned)
    assert [row["patient_id"] for row in rows] == list(EXPECTED)
    assert {row["patient_id"]: row["status"] for row in rows} == EXPECTED
    by_id = {row["patient_id"]: row for row in rows}
    assert "not an image" in by_id["P04"]["reason"] and "no photo" in by_id["P06"]["reason"]
    assert "2 faces" in by_id["P02"]["reason"] and "magnified" in by_id["P05"]["reason"]
    assert "EXIF orientation 6" in by_id["P07"]["notes"] and "grayscale" in by_id["P03"]["notes"]
    assert usable_patients(aligned) == ["P01", "P02", "P07"]
    assert by_id["P01"]["photo"] == "photos/P01.png" and by_id["P06"]["photo"] == ""


def test_outputs_follow_the_layout(aligned: Path) -> None:
    with_image = [pid for pid, status in EXPECTED.items() if status not in ("no_face", "unreadable")]
    for pid in EXPECTED:
        assert (aligned / f"{pid}.png").is_file() == (pid in with_image)
        assert (aligned / "masks" / f"{pid}.png").is_file() == (pid in with_image)
    image = np.asarray(Image.open(aligned / "P01.png"))
    mask = np.asarray(Image.open(aligned / "masks" / "P01.png"))
    assert image.shape == (R, R, 3) and image.dtype == np.uint8
    assert mask.shape == (R, R) and set(np.unique(mask)) <= {0, 1, 2, 3}
    landmarks = read_landmarks_csv(aligned / "landmarks.csv")
    assert list(landmarks) == with_image
    # the EXIF-rotated photo aligns like the upright one
    assert np.hypot(*(landmarks["P07"] - landmarks["P01"]).T).mean() < 0.005 * R


def test_exit_message_counts_failures(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "aligned"
    assert main(["-q", "align", str(cohort), "--out", str(out), "--resolution", "64", "--workers", "1"]) == 0
    assert capsys.readouterr().err == ""  # quiet
    assert main(["align", str(cohort), "--out", str(out), "--resolution", "64", "--workers", "1"]) == 0
    message = " ".join(capsys.readouterr().err.split())
    assert "aligned 7 photo(s)" in message and "7 unchanged" in message
    assert "4 failed QC" in message  # all but P01, P05 and P07 (P05 is not low-resolution at R = 64)
    assert "4 usable" in message  # the ok photos and P02 (multiple_faces)


def test_changing_usable_statuses_rewrites_qc_without_realigning(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "aligned"
    align_cohort(cohort, out, AlignConfig(resolution=64))
    strict = AlignConfig(resolution=64, qc=QCThresholds(usable=("ok",)))
    summary = align_cohort(cohort, out, strict)
    assert summary.reused == 7 and summary.usable == 3
    assert usable_patients(out) == ["P01", "P05", "P07"]


def test_photo_column_and_photo_only_cohorts(cohort: Path, tmp_path: Path) -> None:
    listed = tmp_path / "listed"
    (listed / "imgs").mkdir(parents=True)
    shutil.copy(cohort / "photos" / "P01.png", listed / "imgs" / "first visit.png")
    (listed / "clinical.csv").write_text("patient_id,time,event,photo\nA,10,1,imgs/first visit.png\n")
    align_cohort(listed, tmp_path / "a1", AlignConfig(resolution=64))
    assert [(r["patient_id"], r["status"], r["photo"]) for r in read_qc(tmp_path / "a1")] == [
        ("A", "ok", "imgs/first visit.png")
    ]
    bare = tmp_path / "bare"
    (bare / "photos").mkdir(parents=True)
    shutil.copy(cohort / "photos" / "P01.png", bare / "photos" / "X1.png")
    (bare / "photos" / "notes.txt").write_text("not a photo")
    align_cohort(bare, tmp_path / "a2", AlignConfig(resolution=64))
    assert [(r["patient_id"], r["status"], r["photo"]) for r in read_qc(tmp_path / "a2")] == [
        ("X1", "ok", "photos/X1.png")
    ]


def test_rerun_skips_unchanged_photos_and_redoes_changed_ones(cohort: Path, tmp_path: Path) -> None:
    work = tmp_path / "cohort"
    shutil.copytree(cohort, work)
    out = tmp_path / "aligned"
    options = AlignConfig(resolution=64)
    first = align_cohort(work, out, options)
    assert first.reused == 0 and first.failed == 4
    stamp = (out / "P01.png").stat().st_mtime_ns
    again = align_cohort(work, out, options)
    assert again.reused == 7 and (out / "P01.png").stat().st_mtime_ns == stamp
    (out / "masks" / "P02.png").unlink()  # a lost output is redone
    shutil.copy(work / "photos" / "P01.png", work / "photos" / "P03.png")  # a replaced photo is redone
    third = align_cohort(work, out, options)
    assert third.reused == 5 and third.counts["ok"] == 4 and (out / "masks" / "P02.png").is_file()
    other = align_cohort(work, out, AlignConfig(resolution=32))  # new settings: everything is redone
    assert other.reused == 0 and np.asarray(Image.open(out / "P01.png")).shape == (32, 32, 3)


def test_given_landmarks_replace_the_detector(cohort: Path, aligned: Path, tmp_path: Path) -> None:
    photo = np.asarray(Image.open(cohort / "photos" / "P01.png").convert("RGB"))
    points = detect_faces(photo)[0].landmarks
    csv_path = tmp_path / "given.csv"
    csv_path.write_text(
        landmarks_table({"P01": points, "P03": points + 1000.0})
    )  # P03: far outside its photo
    out = tmp_path / "aligned"
    align_cohort(cohort, out, AlignConfig(resolution=R), landmarks_csv=csv_path)
    rows = {row["patient_id"]: row for row in read_qc(out)}
    assert rows["P01"]["landmarks_source"] == "given" and rows["P02"]["landmarks_source"] == "dlib"
    assert rows["P03"]["status"] == "no_face" and "do not fit" in rows["P03"]["reason"]
    ours, reference = (
        read_landmarks_csv(out / "landmarks.csv")["P01"],
        read_landmarks_csv(aligned / "landmarks.csv"),
    )
    np.testing.assert_allclose(ours, reference["P01"], atol=1e-3)
    assert np.array_equal(
        np.asarray(Image.open(out / "P01.png")), np.asarray(Image.open(aligned / "P01.png"))
    )


def test_process_pool_gives_the_same_result(cohort: Path, aligned: Path, tmp_path: Path) -> None:
    out = tmp_path / "aligned"
    assert (
        main(["-q", "align", str(cohort), "--out", str(out), "--resolution", str(R), "--workers", "2"]) == 0
    )
    for name in ("qc.csv", "landmarks.csv", "P02.png", "masks/P05.png"):
        assert (out / name).read_bytes() == (aligned / name).read_bytes(), name


def test_bad_input_is_exit_code_1(cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,x0,y0\nP01,1,2\n")
    args = ["align", str(cohort), "--out", str(tmp_path / "a"), "--resolution", "64"]
    assert main([*args, "--landmarks", str(bad)]) == 1
    assert "missing column" in capsys.readouterr().err
    assert main(["align", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")]) == 1
    assert main(["align", str(cohort), "--out", str(tmp_path / "c"), "--resolution", "2000"]) == 1


def test_landmarks_csv_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points = {"a": rng.uniform(0, 100, (68, 2)), "b-2": rng.uniform(0, 100, (68, 2))}
    path = tmp_path / "landmarks.csv"
    path.write_text(landmarks_table(points))
    back = read_landmarks_csv(path)
    assert list(back) == ["a", "b-2"]
    for pid in points:
        np.testing.assert_allclose(back[pid], points[pid], atol=1e-4)
    with open(path, newline="") as f:
        assert next(csv.reader(f))[:3] == ["patient_id", "x0", "y0"]


def test_align_settings_round_trip_through_align_json(tmp_path: Path) -> None:
    """align.json records every option; reading it back gives the same options and the same output key."""
    import json

    from stylesurv.core.aligned import read_settings
    from stylesurv.faces.mask import MaskShape

    options = AlignConfig(
        resolution=128, upsample=2, cnn=True, qc=QCThresholds(usable=("ok",)), mask=MaskShape(head_scale=1.4)
    )
    (tmp_path / "align.json").write_text(json.dumps({"settings": options.settings()}))
    back = AlignConfig.from_settings(read_settings(tmp_path))
    assert back == options and back.output_key() == options.output_key()
    assert AlignConfig.from_settings(AlignConfig().settings()) == AlignConfig()
    with pytest.raises(TypeError):
        AlignConfig.from_settings({**options.settings(), "upsampel": 3})
