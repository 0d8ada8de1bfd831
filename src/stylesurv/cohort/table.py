"""The cohort folder: clinical table, photo index and validation of both.

A cohort folder holds ``clinical.csv`` (``patient_id``, ``time`` in days > 0, ``event`` 1 death / 0 censored,
optional covariates, optional ``photo`` path relative to the folder) and ``photos/<patient_id>.<ext>``.
`validate_cohort` reads everything without modifying anything and collects every problem, with the file,
the CSV line, the patient and the fix, into a `ValidationReport`; `load_clinical` and `find_photos` are the
strict readers the later stages use.  Patient ids are data: they are checked before any is used in a path.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from stylesurv.cohort.images import IMAGE_EXTENSIONS, ImageCheck, check_image_unguarded, quiet_bomb_warnings
from stylesurv.core.console import make_progress
from stylesurv.core.errors import InputError
from stylesurv.core.ids import ID_FIX, patient_id_problem

CLINICAL_FILE = "clinical.csv"
PHOTOS_DIR = "photos"
PHOTO_COLUMN = "photo"
REQUIRED_COLUMNS = ("patient_id", "time", "event")

Severity = Literal["error", "warning", "note"]
_Report = Callable[[Severity, int | None, str | None, str, str], None]  # severity, row, patient, message, fix
_SEVERITY_ORDER = {"error": 0, "warning": 1, "note": 2}
_MISSING = {"", "na", "nan", "n/a", "null", "none", "."}
_EVENT_WORDS = {"true": 1, "yes": 1, "false": 0, "no": 0}
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d*")
_COLUMN_FIX = {
    "patient_id": "add a `patient_id` column: one unique id per patient (photos/<patient_id>.jpg)",
    "time": "add a `time` column: follow-up in days from diagnosis (or photo) to death or last contact",
    "event": "add an `event` column: 1 if the patient died at `time`, 0 if censored (alive at last contact)",
}
_TIME_FIX = "give follow-up in days as a positive number (date of death or last contact minus start date)"
_EVENT_FIX = "use 1 for death at `time` and 0 for censored (alive at last contact)"


@dataclass(frozen=True)
class Problem:
    """One finding: how bad, where (file, 1-based CSV line, patient), what is wrong and how to fix it."""

    severity: Severity
    file: str  # relative to the cohort folder
    row: int | None  # 1-based line number in clinical.csv (the header is line 1)
    patient_id: str | None
    message: str
    fix: str

    def line(self) -> str:
        """One grep-able line: ``severity: clinical.csv:row: patient: problem (fix)``, or for another file
        ``severity: file (clinical.csv:row): patient: ...``."""
        where = self.file
        if self.row:
            where += f":{self.row}" if self.file == CLINICAL_FILE else f" ({CLINICAL_FILE}:{self.row})"
        who = f" {repr(self.patient_id)[1:-1]}:" if self.patient_id is not None else ""
        return f"{self.severity}: {where}:{who} {self.message} ({self.fix})"


@dataclass
class ClinicalTable:
    """The parsed clinical table: valid rows as a DataFrame plus every problem found on the way."""

    frame: pd.DataFrame  # valid rows only: patient_id, time, event, covariates (and photo if given)
    problems: list[Problem]
    rows: dict[str, int]  # patient id -> CSV line of its first row, for every usable id (valid or not)
    photo_paths: dict[str, str]  # patient id -> `photo` column value, where given
    covariates: list[str]
    n_rows: int  # data rows in the file


@dataclass
class CovariateSummary:
    """Type of one covariate column and what it holds."""

    kind: Literal["numeric", "categorical"]
    missing: int
    levels: dict[str, int] | None = None  # categorical: level -> count
    minimum: float | None = None
    median: float | None = None
    maximum: float | None = None


@dataclass
class CohortSummary:
    """Size, events and follow-up of the valid rows of a cohort."""

    n: int
    events: int
    censored: int
    censoring_rate: float
    median_followup_days: float | None  # reverse Kaplan-Meier; None when it never drops to 0.5
    min_time_days: float
    max_time_days: float
    covariates: dict[str, CovariateSummary] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """Everything `validate_cohort` found, rendering itself as rich tables or JSON."""

    cohort_dir: Path
    problems: list[Problem]
    summary: CohortSummary | None
    n_rows: int = 0
    n_photos_checked: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing fatal was found (warnings and notes allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(p.severity == s for p in self.problems) for s in _SEVERITY_ORDER}
        return {
            "cohort_dir": str(self.cohort_dir),
            "ok": self.ok,
            "n_rows": self.n_rows,
            "n_photos_checked": self.n_photos_checked,
            "counts": counts,
            "summary": asdict(self.summary) if self.summary is not None else None,
            "problems": [asdict(p) for p in self.problems],
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def render(self, max_problems: int = 200) -> Any:
        """Rich renderable: the cohort summary, then the problems, errors first (at most `max_problems`)."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        parts: list[Any] = []
        if self.summary is not None:
            s = self.summary
            followup = "n/a" if s.median_followup_days is None else f"{s.median_followup_days:.1f} days"
            table = Table(title=f"cohort {self.cohort_dir}", show_header=False)
            table.add_row("patients (valid rows)", f"{s.n} of {self.n_rows}")
            table.add_row("events", f"{s.events}")
            table.add_row("censoring rate", f"{s.censoring_rate:.1%}")
            table.add_row("median follow-up (reverse KM)", followup)
            table.add_row("time range", f"{s.min_time_days:g} to {s.max_time_days:g} days")
            table.add_row("photos checked", f"{self.n_photos_checked}")
            for name, cov in s.covariates.items():
                if cov.kind == "numeric" and cov.minimum is None:
                    desc = "numeric, no values"
                elif cov.kind == "numeric":
                    desc = f"numeric, {cov.minimum:g} to {cov.maximum:g} (median {cov.median:g})"
                else:
                    levels = ", ".join(f"{k} ({v})" for k, v in list((cov.levels or {}).items())[:8])
                    desc = f"categorical: {levels}"
                if cov.missing:
                    desc += f", {cov.missing} missing"
                table.add_row(f"covariate {name}", desc)
            parts.append(table)
        shown = sorted(self.problems, key=lambda p: _SEVERITY_ORDER[p.severity])[:max_problems]
        if shown:
            colours = {"error": "red", "warning": "yellow", "note": "cyan"}
            problems = Table(title="problems", show_lines=False)
            for column in ("severity", "file", "row", "patient", "problem", "fix"):
                problems.add_column(column, overflow="fold")
            for p in shown:
                problems.add_row(
                    Text(p.severity, style=colours[p.severity]),
                    p.file,
                    "" if p.row is None else str(p.row),
                    "" if p.patient_id is None else repr(p.patient_id)[1:-1],
                    p.message,
                    p.fix,
                )
            if len(self.problems) > len(shown):
                problems.caption = f"{len(self.problems) - len(shown)} more not shown; use --json FILE"
            parts.append(problems)
        n_err, n_warn = len(self.errors), len(self.warnings)
        verdict = "[green]OK[/green]" if self.ok else "[red]FAILED[/red]"
        parts.append(Text.from_markup(f"{verdict}: {n_err} error(s), {n_warn} warning(s)"))
        return Group(*parts)

    def lines(self) -> list[str]:
        """The report as plain lines (off a terminal): the summary, one line per problem, the verdict."""
        out = []
        if self.summary is not None:
            s = self.summary
            out.append(
                f"cohort {self.cohort_dir}: {s.n} of {self.n_rows} rows valid, {s.events} events, "
                f"censoring {s.censoring_rate:.1%}, {self.n_photos_checked} photos checked"
            )
        out += [p.line() for p in sorted(self.problems, key=lambda p: _SEVERITY_ORDER[p.severity])]
        verdict = "OK" if self.ok else "FAILED"
        out.append(f"{verdict}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return out

    def __rich__(self) -> Any:
        return self.render()


# ---------------------------------------------------------------------------------------- clinical table
def read_clinical(cohort_dir: str | Path) -> ClinicalTable:
    """Parse ``clinical.csv`` collecting every problem; raise InputError only if the file cannot be read."""
    path = Path(cohort_dir) / CLINICAL_FILE
    text, delimiter = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    problems: list[Problem] = []

    def problem(severity: Severity, row: int | None, pid: str | None, message: str, fix: str) -> None:
        problems.append(Problem(severity, CLINICAL_FILE, row, pid, message, fix))

    header = [name.strip() for name in next(reader)]
    columns = {name: i for i, name in reversed(list(enumerate(header)))}
    for name in sorted({n for n in header if header.count(n) > 1}):
        problem("error", 1, None, f"column {name!r} appears more than once", "rename or remove the duplicate")
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            near = [h for h in header if h.lower().replace(" ", "_") == name]
            hint = f" (found {near[0]!r}: rename it to {name!r})" if near else ""
            problem("error", 1, None, f"missing required column {name!r}{hint}", _COLUMN_FIX[name])
    covariates = list(
        dict.fromkeys(h for h in header if h and h not in REQUIRED_COLUMNS and h != PHOTO_COLUMN)
    )

    records: list[dict[str, Any]] = []
    rows: dict[str, int] = {}
    photo_paths: dict[str, str] = {}
    n_rows = 0
    line = 1
    for fields in reader:
        start, line = line + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue
        n_rows += 1
        if len(fields) != len(header):
            problem(
                "error",
                start,
                None,
                f"row has {len(fields)} fields but the header has {len(header)}",
                f"check this line for a stray {delimiter!r} or an unclosed quote",
            )
            continue
        n_before = len(problems)
        pid = None
        if "patient_id" in columns:
            raw_id = fields[columns["patient_id"]]
            pid = raw_id.strip()
            if pid != raw_id and pid:
                problem(
                    "warning", start, pid, "patient_id has leading/trailing spaces (removed)", "remove them"
                )
            reason = patient_id_problem(pid)
            if reason:
                problem("error", start, pid, reason, f"{ID_FIX}: ids name every stage's files")
                pid = None
            elif pid in rows:
                problem(
                    "error",
                    start,
                    pid,
                    f"duplicate patient_id (first on row {rows[pid]})",
                    "keep one row per patient (merge or remove the duplicates)",
                )
                pid = None
            else:
                rows[pid] = start
        record: dict[str, Any] = {"patient_id": pid}
        if "time" in columns:
            record["time"] = _parse_time(fields[columns["time"]], delimiter, start, pid, problem)
        if "event" in columns:
            record["event"] = _parse_event(fields[columns["event"]], start, pid, problem)
        if PHOTO_COLUMN in columns and pid is not None and fields[columns[PHOTO_COLUMN]].strip():
            record[PHOTO_COLUMN] = photo_paths[pid] = fields[columns[PHOTO_COLUMN]].strip()
        for name in covariates:
            record[name] = fields[columns[name]].strip()
        record["_row"] = start
        if all(p.severity != "error" for p in problems[n_before:]) and pid is not None:
            records.append(record)

    complete = all(c in columns for c in REQUIRED_COLUMNS)
    extra = [PHOTO_COLUMN] if PHOTO_COLUMN in columns else []
    frame = _build_frame(records if complete else [], [*covariates, *extra], covariates, delimiter)
    for name in covariates:
        missing = frame.loc[frame[name].isna(), "_row"].tolist() if len(frame) else []
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            problem(
                "warning",
                None,
                None,
                f"covariate {name!r} missing for {len(missing)} patient(s) (rows {shown})",
                "fill the values in, or leave this covariate out of the model",
            )
    if n_rows == 0:
        problem("error", None, None, "the table has no data rows", "add one row per patient below the header")
    return ClinicalTable(
        frame=frame.drop(columns="_row").reset_index(drop=True),
        problems=problems,
        rows=rows,
        photo_paths=photo_paths,
        covariates=covariates,
        n_rows=n_rows,
    )


def load_clinical(cohort_dir: str | Path) -> pd.DataFrame:
    """The clinical table as a DataFrame (``patient_id`` str, ``time`` float days > 0, ``event`` int 0/1,
    covariates: float when numeric, str otherwise, NaN when missing; ``photo`` if the file has that column).

    Raises InputError listing the problems when the table has any error; run `stylesurv validate` for all.
    """
    table = read_clinical(cohort_dir)
    errors = [p for p in table.problems if p.severity == "error"]
    if errors:
        lines = [_problem_line(p) for p in errors[:10]]
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise InputError(
            f"{Path(cohort_dir) / CLINICAL_FILE}: {len(errors)} problem(s):\n  "
            + "\n  ".join(lines)
            + more
            + f"\nRun `stylesurv validate {cohort_dir}` for the full report."
        )
    return table.frame


def _problem_line(p: Problem) -> str:
    where = f"row {p.row}" if p.row is not None else p.file
    who = f", patient {p.patient_id!r}" if p.patient_id else ""
    return f"{where}{who}: {p.message} ({p.fix})"


def _read_text(path: Path) -> tuple[str, str]:
    """The file's text (UTF-8, BOM removed) and its delimiter (',' or ';', whichever the header uses more)."""
    if not path.is_file():
        raise InputError(
            f"{path}: not found. A cohort folder needs {CLINICAL_FILE} with columns patient_id, time, event."
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}: line {line} is not UTF-8 (byte 0x{data[exc.start]:02x}). Re-save the file as UTF-8 "
            "(e.g. in a spreadsheet: 'CSV UTF-8')."
        ) from exc
    header = next((ln for ln in text.splitlines() if ln.strip()), "")
    if not header:
        raise InputError(f"{path}: the file is empty. Add a header: patient_id,time,event")
    delimiter = ";" if header.count(";") > header.count(",") else ","
    return text, delimiter


# A number as a spreadsheet writes it, in ASCII digits only: float() would also take "1_000", full-width
# and Arabic-Indic digits, which are more likely typing accidents than numbers.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.ASCII | re.I)


def _to_float(value: str, delimiter: str) -> float:
    value = value.strip()
    if delimiter == ";" and _DECIMAL_COMMA.fullmatch(value):
        value = value.replace(",", ".")
    if not _NUMBER.fullmatch(value):
        raise ValueError(f"not a plain number: {value!r}")
    return float(value)


def _parse_time(value: str, delimiter: str, row: int, pid: str | None, problem: _Report) -> float | None:
    value = value.strip()
    if value.lower() in _MISSING:
        problem("error", row, pid, "time is missing", _TIME_FIX)
        return None
    try:
        time = _to_float(value, delimiter)
    except ValueError:
        problem("error", row, pid, f"time {value!r} is not a number", _TIME_FIX)
        return None
    if math.isnan(time):
        problem("error", row, pid, "time is missing (NaN)", _TIME_FIX)
    elif math.isinf(time):
        problem("error", row, pid, f"time {value!r} is infinite", _TIME_FIX)
    elif time == 0:
        problem("error", row, pid, "time is zero", _TIME_FIX + "; for same-day events use e.g. 0.5")
    elif time < 0:
        problem("error", row, pid, f"time {value} is negative", _TIME_FIX + "; check the order of the dates")
    else:
        return time
    return None


def _parse_event(value: str, row: int, pid: str | None, problem: _Report) -> int | None:
    value = value.strip()
    lowered = value.lower()
    if lowered in _EVENT_WORDS:
        event = _EVENT_WORDS[lowered]
        problem("warning", row, pid, f"event {value!r} read as {event}", _EVENT_FIX)
        return event
    if lowered in _MISSING:
        problem("error", row, pid, "event is missing", _EVENT_FIX)
        return None
    try:
        number = _to_float(value, ",")
    except ValueError:
        number = math.nan
    if number in (0.0, 1.0):
        return int(number)
    problem("error", row, pid, f"event {value!r} is not 0 or 1", _EVENT_FIX)
    return None


def _build_frame(
    records: list[dict[str, Any]], columns: list[str], covariates: list[str], delimiter: str
) -> pd.DataFrame:
    """DataFrame of the valid rows with typed columns."""
    frame = pd.DataFrame.from_records(records, columns=["patient_id", "time", "event", *columns, "_row"])
    frame["patient_id"] = frame["patient_id"].astype(str)
    frame["time"] = frame["time"].astype(float)
    frame["event"] = frame["event"].astype(int)
    for name in covariates:
        values = [None if str(v).lower() in _MISSING else v for v in frame[name]]
        numbers = [_try_float(v, delimiter) for v in values]
        if all(n is not None for n, v in zip(numbers, values, strict=True) if v is not None):
            frame[name] = pd.Series([np.nan if n is None else n for n in numbers], dtype=float)
        else:
            frame[name] = pd.Series([np.nan if v is None else str(v) for v in values], dtype=object)
    if PHOTO_COLUMN in frame:
        frame[PHOTO_COLUMN] = frame[PHOTO_COLUMN].where(frame[PHOTO_COLUMN].notna(), "").astype(str)
    return frame


def _try_float(value: str | None, delimiter: str) -> float | None:
    if value is None:
        return None
    try:
        number = _to_float(value, delimiter)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# ------------------------------------------------------------------------------------------- photo index
@dataclass
class _PhotoIndex:
    found: dict[str, Path]  # patient -> photo
    problems: list[Problem]
    orphans: list[Path]  # image files in photos/ that belong to no patient


def find_photos(
    cohort_dir: str | Path, patient_ids: Iterable[str], photo_paths: Mapping[str, str] | None = None
) -> dict[str, Path]:
    """Map each patient id that has exactly one usable photo to its path.

    The photo is ``photo_paths[id]`` (the `photo` column, relative to the cohort folder, never leaving it)
    when given, else ``photos/<id>.<jpg|jpeg|png|webp|tif|tiff>`` (extension in any case).  Unsafe ids,
    missing or ambiguous photos are left out; `validate_cohort` says why.
    """
    return _index_photos(Path(cohort_dir), {pid: None for pid in patient_ids}, photo_paths or {}).found


def _index_photos(
    cohort_dir: Path, rows: Mapping[str, int | None], photo_paths: Mapping[str, str]
) -> _PhotoIndex:
    root = cohort_dir.resolve()
    photos_dir = cohort_dir / PHOTOS_DIR
    photos_real = photos_dir.resolve()
    by_stem: dict[str, list[Path]] = {}
    real: dict[Path, Path] = {}  # photo in photos/ -> its real path (resolved only for links)
    others: list[Path] = []
    if photos_dir.is_dir():
        with os.scandir(photos_dir) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                path = photos_dir / entry.name
                stem, dot, ext = entry.name.rpartition(".")
                if dot and ("." + ext.lower()) in IMAGE_EXTENSIONS:
                    by_stem.setdefault(stem, []).append(path)
                    real[path] = path.resolve() if entry.is_symlink() else photos_real / entry.name
                else:
                    others.append(path)
    found: dict[str, Path] = {}
    problems: list[Problem] = []
    used: set[Path] = set()

    def problem(severity: Severity, file: str, pid: str, message: str, fix: str) -> None:
        problems.append(Problem(severity, file, rows.get(pid), pid, message, fix))

    for pid in rows:
        if patient_id_problem(pid):
            continue
        given = photo_paths.get(pid, "")
        if given:
            if any(unicodedata.category(ch) == "Cc" for ch in given):
                fix = "give a plain relative path such as photos/P001.jpg"
                problem("error", CLINICAL_FILE, pid, "photo path contains control characters", fix)
                continue
            candidate = cohort_dir / given
            resolved = candidate.resolve()
            used.add(resolved)
            if Path(given).is_absolute() or not resolved.is_relative_to(root):
                fix = "give photo paths relative to the cohort folder, inside it"
                problem("error", CLINICAL_FILE, pid, f"photo path {given!r} leaves the cohort folder", fix)
            elif not candidate.is_file():
                fix = "fix the `photo` column or add the file"
                problem("error", CLINICAL_FILE, pid, f"photo {given!r} not found", fix)
            else:
                found[pid] = candidate
            continue
        matches = sorted(by_stem.get(pid, []))
        used.update(real[m] for m in matches)
        if not matches:
            fix = f"add {PHOTOS_DIR}/{pid}.jpg (or .png/.webp/.tif), or a `photo` column"
            problem("error", CLINICAL_FILE, pid, "patient has no photo", fix)
        elif len(matches) > 1:
            names = ", ".join(_relative(m, cohort_dir) for m in matches)
            fix = "keep exactly one photo per patient"
            problem("error", _relative(matches[0], cohort_dir), pid, f"several photos: {names}", fix)
        elif not real[matches[0]].is_relative_to(root):
            fix = "copy the photo into the cohort folder"
            problem(
                "error", _relative(matches[0], cohort_dir), pid, "photo links out of the cohort folder", fix
            )
        else:
            found[pid] = matches[0]
    orphans = sorted(p for p, target in real.items() if target not in used)
    for other in sorted(others):
        problems.append(
            Problem(
                "warning",
                _relative(other, cohort_dir),
                None,
                None,
                "not an image file name (ignored)",
                "remove it or give it an image extension",
            )
        )
    return _PhotoIndex(found=found, problems=problems, orphans=orphans)


def _relative(path: Path, cohort_dir: Path) -> str:
    try:
        return path.relative_to(cohort_dir).as_posix()
    except ValueError:
        return str(path)


# -------------------------------------------------------------------------------------------- validation
def validate_cohort(cohort_dir: str | Path, workers: int | None = None) -> ValidationReport:
    """Check a cohort folder's table and photos without modifying it; collect every problem found.

    Photos are checked in a thread pool of `workers` threads (default: CPU count, at most 8) with a progress
    bar; each is opened (header), refused if above 100 megapixels, then decoded (JPEG at 1/8 scale).
    """
    cohort_dir = Path(cohort_dir)
    if not cohort_dir.is_dir():
        raise InputError(f"{cohort_dir}: not a folder. Give the cohort folder holding {CLINICAL_FILE}.")
    try:
        table = read_clinical(cohort_dir)
    except InputError as exc:
        problem = Problem("error", CLINICAL_FILE, None, None, str(exc), "see the message")
        return ValidationReport(cohort_dir=cohort_dir, problems=[problem], summary=None)
    problems = list(table.problems)
    index = _index_photos(cohort_dir, table.rows, table.photo_paths)
    problems += index.problems
    for orphan in index.orphans:
        problems.append(
            Problem(
                "warning",
                _relative(orphan, cohort_dir),
                None,
                None,
                "photo without a patient in clinical.csv (ignored)",
                "add the patient to clinical.csv or remove the photo",
            )
        )
    checks = check_photos(list(index.found.values()), workers=workers)
    for (pid, path), check in zip(index.found.items(), checks, strict=True):
        file, row = _relative(path, cohort_dir), table.rows.get(pid)
        if check.error:
            problems.append(Problem("error", file, row, pid, check.error, check.fix))
            continue
        for note in check.notes:
            problems.append(Problem("note", file, row, pid, note, "none needed: converted when read"))
        expected = {
            "JPEG": (".jpg", ".jpeg"),
            "PNG": (".png",),
            "WEBP": (".webp",),
            "TIFF": (".tif", ".tiff"),
        }
        if check.format in expected and path.suffix.lower() not in expected[check.format]:
            problems.append(
                Problem(
                    "note",
                    file,
                    row,
                    pid,
                    f"file holds a {check.format} image",
                    "none needed: read by content; rename to match if you like",
                )
            )
    problems += _cohort_problems(table, index.found, cohort_dir)
    return ValidationReport(
        cohort_dir=cohort_dir,
        problems=problems,
        summary=summarize(table.frame, table.covariates) if len(table.frame) else None,
        n_rows=table.n_rows,
        n_photos_checked=len(checks),
    )


MIN_PATIENTS = 20  # below this no cross-validated survival model says much
MAX_TIME_DAYS = 36_525.0  # 100 years: a longer follow-up is a unit or typing error


def _cohort_problems(table: ClinicalTable, photos: dict[str, Path], cohort_dir: Path) -> list[Problem]:
    """What no single row shows: too few patients or events, times that are all alike or absurd, and one
    photo file given to several patients."""
    found: list[Problem] = []
    frame = table.frame
    table_file = cohort_dir / CLINICAL_FILE
    if table_file.is_symlink() and not table_file.resolve().is_relative_to(cohort_dir.resolve()):
        found.append(
            Problem(
                "warning",
                CLINICAL_FILE,
                None,
                None,
                f"clinical.csv links out of the cohort folder (to {table_file.resolve()})",
                "copy the table into the cohort folder, so that the folder holds everything a run used",
            )
        )

    def cohort(message: str, fix: str) -> None:
        found.append(Problem("warning", CLINICAL_FILE, None, None, message, fix))

    n = len(frame)
    if 0 < n < MIN_PATIENTS:
        cohort(
            f"only {n} valid patient(s)", f"survival models need dozens of patients (at least {MIN_PATIENTS})"
        )
    if n and int(frame["event"].sum()) == 0:
        cohort(
            "no events: every patient is censored", "no survival model can be fitted or scored without deaths"
        )
    if n > 1 and frame["time"].nunique() == 1:
        cohort(f"every follow-up time is {frame['time'].iloc[0]:g}", "check the time column (days to event)")
    for pid, time in zip(frame["patient_id"], frame["time"], strict=True):
        if time > MAX_TIME_DAYS:
            found.append(
                Problem(
                    "warning",
                    CLINICAL_FILE,
                    table.rows.get(pid),
                    pid,
                    f"time {time:.4g} days is more than 100 years",
                    "give follow-up in days",
                )
            )
    first_with: dict[Path, str] = {}
    for pid, path in photos.items():
        resolved = path.resolve()
        if resolved in first_with:
            found.append(
                Problem(
                    "warning",
                    _relative(path, cohort_dir),
                    table.rows.get(pid),
                    pid,
                    f"the same photo file as patient {first_with[resolved]}",
                    "give each patient their own photo",
                )
            )
        else:
            first_with[resolved] = pid
    return found


def check_photos(paths: list[Path], workers: int | None = None) -> list[ImageCheck]:
    """`check_image` on many photos in a thread pool (decoders release the GIL), with a progress bar."""
    workers = workers or min(8, os.cpu_count() or 1)
    results: list[ImageCheck] = []
    with quiet_bomb_warnings(), make_progress() as progress:
        task = progress.add_task("checking photos", total=len(paths))
        if workers == 1:
            for path in paths:
                results.append(check_image_unguarded(path))
                progress.advance(task)
            return results
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(check_image_unguarded, paths, chunksize=1):
                results.append(result)
                progress.advance(task)
    return results


# ---------------------------------------------------------------------------------------------- summary
def reverse_km_median_followup(time: np.ndarray, event: np.ndarray) -> float | None:
    """Median follow-up by reverse Kaplan-Meier (censoring is the event): first time its curve is <= 0.5.

    None when the curve never gets there (e.g. every patient died, so no follow-up was censored).
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    censored = np.asarray(event) == 0
    if not censored.any():
        return None
    times, curve = kaplan_meier_estimator(censored, np.asarray(time, dtype=float))
    below = np.flatnonzero(curve <= 0.5 + 1e-12)
    return float(times[below[0]]) if below.size else None


def summarize(frame: pd.DataFrame, covariates: list[str]) -> CohortSummary:
    """Cohort summary of a valid clinical frame: n, events, censoring, median follow-up, covariate types."""
    time = frame["time"].to_numpy(float)
    event = frame["event"].to_numpy(int)
    covs: dict[str, CovariateSummary] = {}
    for name in covariates:
        column = frame[name]
        missing = int(column.isna().sum())
        if pd.api.types.is_float_dtype(column):
            values = column.dropna().to_numpy(float)
            empty = values.size == 0
            covs[name] = CovariateSummary(
                kind="numeric",
                missing=missing,
                minimum=None if empty else float(values.min()),
                median=None if empty else float(np.median(values)),
                maximum=None if empty else float(values.max()),
            )
        else:
            counts = column.dropna().value_counts()
            levels = {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}
            covs[name] = CovariateSummary(kind="categorical", missing=missing, levels=levels)
    n = len(frame)
    events = int(event.sum())
    return CohortSummary(
        n=n,
        events=events,
        censored=n - events,
        censoring_rate=(n - events) / n if n else 0.0,
        median_followup_days=reverse_km_median_followup(time, event),
        min_time_days=float(time.min()) if n else 0.0,
        max_time_days=float(time.max()) if n else 0.0,
        covariates=covs,
    )
