"""The clinical table: parsing, each row rule with its CSV line, ids, photo index, reverse-KM follow-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stylesurv.cohort.table import (
    find_photos,
    load_clinical,
    read_clinical,
    reverse_km_median_followup,
    summarize,
)
from stylesurv.core.errors import InputError
from stylesurv.core.ids import patient_id_problem


def _cohort(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    (tmp_path / "clinical.csv").write_bytes(text.encode(encoding))
    return tmp_path


def _errors(table) -> list[tuple[int | None, str | None, str]]:
    return [(p.row, p.patient_id, p.message) for p in table.problems if p.severity == "error"]


def test_semicolon_bom_and_decimal_comma(tmp_path: Path) -> None:
    cohort = _cohort(
        tmp_path, "patient_id;time;event;age;stage\r\nA;12,5;1;61,5;II\r\nB;30;0;70;III\r\n", "utf-8-sig"
    )
    frame = load_clinical(cohort)
    assert list(frame.columns) == ["patient_id", "time", "event", "age", "stage"]
    assert frame["patient_id"].tolist() == ["A", "B"]
    assert frame["time"].tolist() == [12.5, 30.0] and frame["time"].dtype == float
    assert frame["event"].tolist() == [1, 0] and frame["event"].dtype == np.int64
    assert frame["age"].tolist() == [61.5, 70.0]
    assert frame["stage"].tolist() == ["II", "III"]


def test_comma_csv_with_photo_column_and_missing_covariate(tmp_path: Path) -> None:
    cohort = _cohort(tmp_path, "patient_id,time,event,photo,sex\nA,1,0,img/a.jpg,F\nB,2,1,,\n")
    table = read_clinical(cohort)
    assert table.frame["photo"].tolist() == ["img/a.jpg", ""]
    assert table.photo_paths == {"A": "img/a.jpg"}
    assert table.frame["sex"].iloc[0] == "F" and pd.isna(table.frame["sex"].iloc[1])
    assert [p.severity for p in table.problems] == ["warning"]
    assert "'sex' missing for 1 patient(s) (rows 3)" in table.problems[0].message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "time is missing"),
        ("NA", "time is missing"),
        ("abc", "time 'abc' is not a number"),
        ("0", "time is zero"),
        ("-3", "time -3 is negative"),
        ("inf", "time 'inf' is infinite"),
        ("-Infinity", "time '-Infinity' is infinite"),
        ("nan", "time is missing"),
    ],
)
def test_bad_time(tmp_path: Path, value: str, message: str) -> None:
    table = read_clinical(_cohort(tmp_path, f"patient_id,time,event\nok,5,1\nbad,{value},1\n"))
    assert _errors(table) == [(3, "bad", message)]
    assert table.frame["patient_id"].tolist() == ["ok"]
    with pytest.raises(InputError, match=f"row 3, patient 'bad': {message}"):
        load_clinical(tmp_path)


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("0", 0), ("1.0", 1), (" 0 ", 0)])
def test_event_numeric(tmp_path: Path, value: str, expected: int) -> None:
    frame = load_clinical(_cohort(tmp_path, f"patient_id,time,event\nA,5,{value}\n"))
    assert frame["event"].tolist() == [expected]


@pytest.mark.parametrize(("value", "expected"), [("yes", 1), ("No", 0), ("TRUE", 1), ("false", 0)])
def test_event_words_accepted_with_warning(tmp_path: Path, value: str, expected: int) -> None:
    table = read_clinical(_cohort(tmp_path, f"patient_id,time,event\nA,5,{value}\n"))
    assert table.frame["event"].tolist() == [expected]
    assert [(p.severity, p.row, p.message) for p in table.problems] == [
        ("warning", 2, f"event {value!r} read as {expected}")
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [("2", "event '2' is not 0 or 1"), ("dead", "event 'dead' is not 0 or 1"), ("", "event is missing")],
)
def test_bad_event(tmp_path: Path, value: str, message: str) -> None:
    table = read_clinical(_cohort(tmp_path, f"patient_id,time,event\nA,5,{value}\n"))
    assert _errors(table) == [(2, "A", message)]


@pytest.mark.parametrize(
    ("pid", "reason"),
    [
        ("", "empty"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "'..'"),
        ("x..y", "'..'"),
        (".hidden", "not a safe file name"),
        ("nul\x00id", "control or invisible characters"),
        ("tab\tid", "control or invisible characters"),
        ("x" * 201, "longer than 200 bytes"),
        # the ids the embed stage used to refuse only after alignment had run (issue: one id rule)
        ("P 01", "not a safe file name"),
        ("Zoë", "not a safe file name"),
        ("\u202eP01", "invisible characters"),  # right-to-left override
        ("P\u200b01", "invisible characters"),  # zero-width space
        ("\uff11\uff12", "not a safe file name"),  # full-width digits
        ("-x", "not a safe file name"),
    ],
)
def test_unsafe_patient_ids(pid: str, reason: str) -> None:
    assert reason in (patient_id_problem(pid) or "")


@pytest.mark.parametrize("pid", ["P001", "patient-7_b", "a.b", "1", "x.y_z-1"])
def test_safe_patient_ids(pid: str) -> None:
    assert patient_id_problem(pid) is None


def test_id_rules_in_table_with_line_numbers(tmp_path: Path) -> None:
    # Line numbers count physical lines: the quoted note spans lines 2-3, and blank line 5 is skipped.
    text = (
        "patient_id,time,event,note\n"
        'A,5,1,"two\nlines"\n'
        "A,6,0,dup\n"
        "\n"
        ",7,1,empty\n"
        "../x,8,1,path\n"
        '"c\x01",9,1,ctrl\n'
        " B ,10,0,spaces\n"
        "C,11\n"
    )
    table = read_clinical(_cohort(tmp_path, text))
    assert _errors(table) == [
        (4, "A", "duplicate patient_id (first on row 2)"),
        (6, "", "patient_id is empty"),
        (7, "../x", "patient_id '../x' contains a path separator"),
        (8, "c\x01", "patient_id 'c\\x01' contains control or invisible characters"),
        (10, None, "row has 2 fields but the header has 4"),
    ]
    warnings = [(p.row, p.patient_id, p.message) for p in table.problems if p.severity == "warning"]
    assert warnings == [(9, "B", "patient_id has leading/trailing spaces (removed)")]
    assert table.frame["patient_id"].tolist() == ["A", "B"]
    assert table.rows == {"A": 2, "B": 9}
    assert table.n_rows == 7


def test_missing_columns_reported_with_hint(tmp_path: Path) -> None:
    table = read_clinical(_cohort(tmp_path, "patient_id,Time,status\nA,5,1\n"))
    messages = [p.message for p in table.problems if p.severity == "error"]
    assert messages == [
        "missing required column 'time' (found 'Time': rename it to 'time')",
        "missing required column 'event'",
    ]
    assert len(table.frame) == 0
    with pytest.raises(InputError, match="missing required column 'event'"):
        load_clinical(tmp_path)


def test_unreadable_tables_raise(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_clinical(tmp_path)
    _cohort(tmp_path, "")
    with pytest.raises(InputError, match="empty"):
        load_clinical(tmp_path)
    (tmp_path / "clinical.csv").write_bytes("patient_id,time,event\nJosé,5,1\n".encode("latin-1"))
    with pytest.raises(InputError, match="line 2 is not UTF-8"):
        load_clinical(tmp_path)
    _cohort(tmp_path, "patient_id,time,event\n")
    with pytest.raises(InputError, match="no data rows"):
        load_clinical(tmp_path)


def test_covariate_types(tmp_path: Path) -> None:
    text = "patient_id,time,event,age,stage,grade\nA,1,1,50,I,1\nB,2,0,60,II,x\nC,3,0,,II,2\n"
    table = read_clinical(_cohort(tmp_path, text))
    summary = summarize(table.frame, table.covariates)
    assert summary.covariates["age"].kind == "numeric" and summary.covariates["age"].missing == 1
    assert (summary.covariates["age"].minimum, summary.covariates["age"].maximum) == (50.0, 60.0)
    assert summary.covariates["stage"].kind == "categorical"
    assert summary.covariates["stage"].levels == {"I": 1, "II": 2}
    assert summary.covariates["grade"].kind == "categorical"  # one non-number makes the column categorical
    assert (summary.n, summary.events, summary.censored) == (3, 1, 2)
    assert summary.censoring_rate == pytest.approx(2 / 3)


# ------------------------------------------------------------------------------------------- photo index
def test_find_photos(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ["A.JPG", "B.png", "C.jpeg", "C.png", "D.txt", "a.b.TIFF", "orphan.webp"]:
        (photos / name).write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.jpg").write_bytes(b"x")
    (tmp_path.parent / "outside.jpg").write_bytes(b"x")
    found = find_photos(
        tmp_path,
        ["A", "B", "C", "D", "a.b", "E", "F", "G", "../photos/A", ""],
        photo_paths={
            "E": "elsewhere/e.jpg",
            "F": "../outside.jpg",
            "G": str(tmp_path / "elsewhere" / "e.jpg"),
        },
    )
    # C has two photos (ambiguous), D only a non-image, F and G lead outside or are absolute; "../" unsafe.
    assert found == {
        "A": photos / "A.JPG",
        "B": photos / "B.png",
        "a.b": photos / "a.b.TIFF",
        "E": tmp_path / "elsewhere" / "e.jpg",
    }


# -------------------------------------------------------------------------------------- reverse KM median
def test_reverse_km_median_followup_hand_computed_and_lifelines() -> None:
    time = np.array([1, 2, 3, 4, 5, 6], float)
    event = np.array([1, 0, 1, 0, 0, 1])
    # Reverse KM (censoring as the event): t=2: 5/6 at risk... S = 1 - 1/5 = 0.8; t=4: 0.8 * 2/3 = 0.533;
    # t=5: 0.533 * 1/2 = 0.267 <= 0.5, so the median follow-up is 5 (by hand).
    assert reverse_km_median_followup(time, event) == 5.0
    from lifelines import KaplanMeierFitter

    fitter = KaplanMeierFitter().fit(time, 1 - event)
    assert reverse_km_median_followup(time, event) == fitter.median_survival_time_


def test_reverse_km_median_matches_lifelines_with_ties() -> None:
    rng = np.random.default_rng(5)
    time = rng.integers(1, 40, 200).astype(float)  # many ties between deaths and censorings
    event = (rng.random(200) < 0.4).astype(int)
    from lifelines import KaplanMeierFitter

    expected = KaplanMeierFitter().fit(time, 1 - event).median_survival_time_
    assert reverse_km_median_followup(time, event) == expected


def test_reverse_km_median_undefined_when_nobody_censored() -> None:
    assert reverse_km_median_followup(np.array([1.0, 2.0]), np.array([1, 1])) is None
