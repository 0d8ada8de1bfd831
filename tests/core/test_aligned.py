"""The one reader of the aligned-folder contract (core.aligned) and the one file-name rule (core.ids)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stylesurv
from stylesurv.core import aligned
from stylesurv.core.errors import InputError
from stylesurv.core.ids import SAFE_ID, patient_id_problem

PACKAGE = Path(stylesurv.__file__).resolve().parent


def write_folder(folder: Path, rows: list[tuple[str, str, str | None]], side: int = 4) -> Path:
    """An aligned folder with a photo per row and a qc.csv of (patient_id, status, usable); usable None: a
    qc.csv without the usable column."""
    folder.mkdir(parents=True, exist_ok=True)
    with_usable = any(usable is not None for _, _, usable in rows)
    lines = ["patient_id,status" + (",usable" if with_usable else "")]
    for pid, status, usable in rows:
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(folder / f"{pid}.png")
        lines.append(f"{pid},{status}" + (f",{usable}" if with_usable else ""))
    (folder / aligned.QC_FILE).write_text("\n".join(lines) + "\n")
    return folder


# ------------------------------------------------------------------------------------------ usable patients
def test_usable_patients_follow_the_usable_column_in_qc_order(tmp_path) -> None:
    folder = write_folder(tmp_path, [("B", "ok", "1"), ("A", "multiple_faces", "1"), ("C", "ok", "0")])
    assert aligned.usable_patients(folder) == ["B", "A"]  # C is ok but align --usable left it out


def test_without_a_usable_column_the_default_statuses_are_usable(tmp_path) -> None:
    folder = write_folder(
        tmp_path, [("A", "ok", None), ("B", "multiple_faces", None), ("C", "extreme_pose", None)]
    )
    assert aligned.usable_patients(folder) == ["A", "B"]
    assert aligned.DEFAULT_USABLE == ("ok", "multiple_faces")
    from stylesurv.faces.qc import DEFAULT_USABLE, QCThresholds

    assert DEFAULT_USABLE is aligned.DEFAULT_USABLE and QCThresholds().usable == aligned.DEFAULT_USABLE


def test_a_plain_folder_counts_only_where_the_caller_allows_it(tmp_path) -> None:
    for pid in ("b", "a"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / f"{pid}.png")
    assert aligned.usable_patients(tmp_path, plain=True) == ["a", "b"]
    with pytest.raises(InputError, match=r"qc\.csv: not found"):
        aligned.usable_patients(tmp_path)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "bad id.png")
    with pytest.raises(InputError, match=r"bad id\.png: patient_id 'bad id' is not a safe file name"):
        aligned.usable_patients(tmp_path, plain=True)


def test_broken_folders_are_errors_that_name_the_file_and_line(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        aligned.usable_patients(tmp_path / "nowhere")
    unsafe = write_folder(tmp_path / "unsafe", [("A", "ok", "1")])
    (unsafe / "qc.csv").write_text("patient_id,status,usable\nA,ok,1\n../etc,ok,1\n")
    with pytest.raises(
        InputError, match=r"unsafe[/\\]qc\.csv line 3: patient_id '\.\./etc' contains a path separator"
    ):
        aligned.usable_patients(unsafe)
    (unsafe / "qc.csv").write_text("patient_id,status,usable\nA,ok,1\nZ,ok,1\n")
    with pytest.raises(InputError, match=r"qc\.csv line 3: Z is usable but Z\.png is missing"):
        aligned.usable_patients(unsafe)
    (unsafe / "qc.csv").write_text("patient_id,usable\nA,1\n")
    with pytest.raises(InputError, match=r"qc\.csv must have columns patient_id and status"):
        aligned.usable_patients(unsafe)


def test_unusable_rows_are_not_checked(tmp_path) -> None:
    folder = write_folder(tmp_path, [("A", "ok", "1")])
    (folder / "qc.csv").write_text("patient_id,status,usable\nA,ok,1\n../x,no_face,0\nB,no_face,0\n")
    assert aligned.usable_patients(folder) == ["A"]  # no photo for B and an unsafe id, but both unusable


def test_read_qc_strips_values_and_fills_short_rows(tmp_path) -> None:
    (tmp_path / "qc.csv").write_text("\ufeffpatient_id,status,reason\n P1 ,ok\n")
    assert aligned.read_qc(tmp_path) == [{"patient_id": "P1", "status": "ok", "reason": ""}]


# ------------------------------------------------------------------------------------ photos, masks, rest
def test_photo_and_mask_files_exist_or_are_none(tmp_path) -> None:
    write_folder(tmp_path, [("A", "ok", "1")])
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.ones((4, 4), np.uint8)).save(tmp_path / "masks" / "A.png")
    assert aligned.photo_file(tmp_path, "A") == tmp_path / "A.png"
    assert aligned.mask_file(tmp_path, "A") == tmp_path / "masks" / "A.png"
    assert aligned.photo_file(tmp_path, "B") is None and aligned.mask_file(tmp_path, "B") is None
    assert aligned.photo_file(tmp_path, "../A") is None and aligned.mask_file(tmp_path, "../masks/A") is None
    assert aligned.read_photo(tmp_path / "A.png").shape == (4, 4, 3)
    (tmp_path / "C.png").write_text("not a png")
    with pytest.raises(InputError, match=r"C\.png: unreadable aligned photo"):
        aligned.read_photo(tmp_path / "C.png")


def test_landmarks_and_settings(tmp_path) -> None:
    assert aligned.read_landmarks(tmp_path) == {} and aligned.read_settings(tmp_path) is None
    points = np.arange(136, dtype=np.float64).reshape(68, 2)
    header = "patient_id," + ",".join(aligned.LANDMARK_COLUMNS)
    (tmp_path / "landmarks.csv").write_text(f"{header}\nP1," + ",".join(map(str, points.reshape(-1))) + "\n")
    found = aligned.read_landmarks(tmp_path)
    assert list(found) == ["P1"] and np.array_equal(found["P1"], points)
    (tmp_path / "landmarks.csv").write_text(f"{header}\nP1," + ",".join(["x"] * 136) + "\n")
    with pytest.raises(
        InputError, match=r"landmarks\.csv, line 2: patient 'P1' has a missing or non-numeric"
    ):
        aligned.read_landmarks(tmp_path)
    (tmp_path / "align.json").write_text(json.dumps({"settings": {"resolution": 64}, "counts": {}}))
    assert aligned.read_settings(tmp_path) == {"resolution": 64}
    (tmp_path / "align.json").write_text("{")
    with pytest.raises(InputError, match=r"align\.json: unreadable alignment settings"):
        aligned.read_settings(tmp_path)


# ---------------------------------------------------------------------------------------- the id file rule
def test_the_file_name_rule_for_ids() -> None:
    for ok in ("P01", "a.b-c_d", "7", "x.y"):
        assert patient_id_problem(ok) is None, ok
    for bad in (".hidden", "-x", "a b", "Müller", "a:b"):
        assert "is not a safe file name" in (patient_id_problem(bad) or ""), bad
    for bad in ("a/b", "../x"):
        assert "path separator" in (patient_id_problem(bad) or ""), bad


def test_one_copy_of_the_id_rule_and_of_the_folder_readers() -> None:
    """No module but core.ids spells the safe-id pattern, and the stages that read aligned folders import
    the reader instead of parsing qc.csv or landmarks.csv themselves."""
    pattern = SAFE_ID.pattern
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "ids.py":
            assert pattern not in text and "_SAFE_ID" not in text, path
    for name in ("invert/embed.py", "gan/dataset.py", "survival/cnn.py", "explain/nuisance.py"):
        text = (PACKAGE / name).read_text(encoding="utf-8")
        assert "stylesurv.core.aligned" in text, name
        assert not re.search(r"csv\.DictReader|\"(qc|landmarks)\.csv\"|/ \"masks\"", text), name
