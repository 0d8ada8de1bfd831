"""The aligned-folder contract that `stylesurv align` writes and every later stage reads.

ALIGNED/<patient_id>.png   the aligned R x R photo
ALIGNED/masks/<patient_id>.png   labels 0 background, 1 face, 2 clothing, 3 other (REGIONS)
ALIGNED/landmarks.csv   68 landmarks per patient in aligned coordinates
ALIGNED/qc.csv   one row per patient: status, reason and ``usable`` (1 for photos later stages use)
ALIGNED/align.json   the settings that made the folder
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylesurv.core.console import warn
from stylesurv.core.errors import InputError
from stylesurv.core.ids import patient_id_problem

REGIONS = ("background", "face", "clothing", "other")  # index = mask label


def patient_file(folder: str | Path, patient_id: str, suffix: str = ".png") -> Path | None:
    """``folder/<patient_id><suffix>`` if the id is safe as a file name, else None (ids are data)."""
    if patient_id_problem(str(patient_id)) is not None:
        return None
    return Path(folder) / f"{patient_id}{suffix}"


def read_mask(path: Path, resolution: int) -> np.ndarray:
    """A label mask [R, R] uint8 resized (nearest) to ``resolution``; labels above 3 are an error."""
    try:
        with Image.open(path) as img:
            img.load()
            mask = img.convert("L") if img.mode not in {"L", "P"} else img
            if mask.size != (resolution, resolution):
                mask = mask.resize((resolution, resolution), Image.Resampling.NEAREST)
            labels = np.asarray(mask, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{path}: unreadable mask image ({exc}); re-run `stylesurv align`") from None
    if labels.max(initial=0) >= len(REGIONS):
        raise InputError(f"{path}: mask labels must be 0-3 (background, face, clothing, other)")
    return labels


def majority_mask(masks: list[np.ndarray]) -> np.ndarray:
    """The per-pixel most frequent label of several masks [R, R]."""
    counts = np.stack([(np.stack(masks) == label).sum(axis=0) for label in range(len(REGIONS))])
    return counts.argmax(axis=0).astype(np.uint8)


def load_masks(aligned_dir: str | Path, patient_ids: list[str], resolution: int) -> tuple[np.ndarray, int]:
    """Masks [N, R, R] of the patients, and how many fell back to the cohort's majority mask."""
    folder = Path(aligned_dir) / MASKS_DIR
    found: dict[int, np.ndarray] = {}
    for i, pid in enumerate(patient_ids):
        path = mask_file(aligned_dir, pid)
        if path is not None:
            found[i] = read_mask(path, resolution)
    if not found:
        raise InputError(
            f"{folder}: no masks for these patients; the attribution needs aligned/masks/<patient_id>.png "
            "(written by `stylesurv align`)"
        )
    missing = len(patient_ids) - len(found)
    fallback = majority_mask(list(found.values())) if missing else None
    if missing:
        warn(f"{missing} patient(s) have no mask in {folder}; using the cohort's majority mask for them")
    return np.stack([found.get(i, fallback) for i in range(len(patient_ids))]), missing


LANDMARKS_FILE = "landmarks.csv"


QC_FILE = "qc.csv"


MASKS_DIR = "masks"


SETTINGS_FILE = "align.json"


LANDMARK_COLUMNS = tuple(f"{axis}{i}" for i in range(68) for axis in "xy")


QC_COLUMNS = (
    "patient_id", "status", "reason", "usable", "photo", "landmarks_source", "n_faces", "face_size_px",
    "upsample", "pose_asymmetry", "notes",
)  # fmt: skip


# ------------------------------------------------------------------------------------------ read back
# This is the one reader of the contract: every stage asks it which patients are usable
# (`usable_patients`), where a patient's photo and mask are (`photo_file`, `mask_file`), and for photos,
# masks, landmarks and settings (`read_photo`, `read_mask`, `load_masks`, `read_landmarks`, `read_settings`).
# QC statuses later stages use unless `align --usable` says otherwise (and where qc.csv has no usable column)
DEFAULT_USABLE = ("ok", "multiple_faces")
USABLE_VALUES = ("1", "true", "yes", "y", "t")  # qc.csv ``usable`` values meaning usable (align writes 1)


def check_folder(aligned_dir: str | Path) -> Path:
    """``aligned_dir`` as a path, which must be a folder."""
    folder = Path(aligned_dir)
    if not folder.is_dir():
        raise InputError(f"aligned folder {folder} does not exist; run `stylesurv align` first")
    return folder


def read_qc(aligned_dir: str | Path) -> list[dict[str, str]]:
    """The rows of an aligned folder's qc.csv, as dictionaries of stripped strings ("" where a row is short).

    qc.csv must have the columns patient_id and status; ``usable`` is optional (see `qc_usable`).
    """
    path = Path(aligned_dir) / QC_FILE
    if not path.is_file():
        raise InputError(f"{path}: not found; run `stylesurv align` to make the aligned folder")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: unreadable ({exc}); re-run `stylesurv align`") from None
    if not {"patient_id", "status"} <= set(columns):
        raise InputError(f"{path} must have columns patient_id and status; re-run `stylesurv align`")
    return [{k: (v or "").strip() for k, v in row.items() if isinstance(k, str)} for row in rows]


def qc_usable(row: dict[str, str]) -> bool:
    """Whether a qc.csv row's photo is for later stages: its ``usable`` column says so (1), or, in a qc.csv
    without that column (hand-made or older), its status is one of DEFAULT_USABLE."""
    if "usable" in row:
        return row["usable"].lower() in USABLE_VALUES
    return row.get("status", "") in DEFAULT_USABLE


def usable_patients(aligned_dir: str | Path, plain: bool = False) -> list[str]:
    """Patient ids whose aligned photo later stages use: qc.csv's usable rows, in qc.csv's order.

    Each usable id must be a safe file name (`stylesurv.core.ids.patient_id_problem`) and its
    ``<patient_id>.png`` must exist; either problem is an error naming qc.csv and the line.  ``plain``: a
    folder without qc.csv is taken as a plain folder of aligned photos and yields every
    ``<patient_id>.png`` in it, sorted (only for callers that support such folders).  May be empty.
    """
    folder = check_folder(aligned_dir)
    qc = folder / QC_FILE
    if plain and not qc.is_file():
        pids = sorted(p.stem for p in folder.glob("*.png") if p.is_file())
        for pid in pids:
            problem = patient_id_problem(pid)
            if problem is not None:
                raise InputError(f"{folder / (pid + '.png')}: {problem}")
        return pids
    pids = []
    for line, row in enumerate(read_qc(folder), start=2):
        if not qc_usable(row):
            continue
        pid = row["patient_id"]
        problem = patient_id_problem(pid)
        if problem is not None:
            raise InputError(f"{qc} line {line}: {problem}")
        if not (folder / f"{pid}.png").is_file():
            raise InputError(
                f"{qc} line {line}: {pid} is usable but {pid}.png is missing; re-run `stylesurv align`"
            )
        pids.append(pid)
    return pids


def photo_file(aligned_dir: str | Path, patient_id: str) -> Path | None:
    """``ALIGNED/<patient_id>.png`` if the id can name a file and the photo exists, else None."""
    path = patient_file(aligned_dir, patient_id)
    return path if path is not None and path.is_file() else None


def mask_file(aligned_dir: str | Path, patient_id: str) -> Path | None:
    """``ALIGNED/masks/<patient_id>.png`` if the id can name a file and the mask exists, else None."""
    path = patient_file(Path(aligned_dir) / MASKS_DIR, patient_id)
    return path if path is not None and path.is_file() else None


def read_photo(path: str | Path) -> np.ndarray:
    """An aligned photo as uint8 RGB [R, R, 3]; an unreadable file is an error naming it."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as exc:  # PIL's UnidentifiedImageError is an OSError
        raise InputError(f"{path}: unreadable aligned photo ({exc}); re-run `stylesurv align`") from None


def read_landmarks_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read a landmarks CSV (patient_id, x0, y0, ..., x67, y67) into patient id -> [68, 2] points."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: landmarks file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the landmarks file ({exc}); save it as UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in ("patient_id", *LANDMARK_COLUMNS) if c not in (reader.fieldnames or [])]
    if missing:
        shown = ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise InputError(f"{path}: missing column(s) {shown}; expected patient_id,x0,y0,...,x67,y67")
    points: dict[str, np.ndarray] = {}
    for line, row in enumerate(reader, start=2):
        pid = (row["patient_id"] or "").strip()
        if pid in points:
            raise InputError(f"{path}, line {line}: patient {pid!r} appears twice; keep one row per patient")
        try:
            values = np.array([float(row[c]) for c in LANDMARK_COLUMNS], dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"{path}, line {line}: patient {pid!r} has a missing or non-numeric coordinate"
            ) from None
        if not np.all(np.isfinite(values)):
            raise InputError(f"{path}, line {line}: patient {pid!r} has a non-finite coordinate")
        points[pid] = values.reshape(68, 2)
    return points


def read_landmarks(aligned_dir: str | Path) -> dict[str, np.ndarray]:
    """The aligned folder's 68-point landmarks per patient in aligned pixels ({} without landmarks.csv)."""
    path = Path(aligned_dir) / LANDMARKS_FILE
    return read_landmarks_csv(path) if path.is_file() else {}


def read_settings(aligned_dir: str | Path) -> dict[str, Any] | None:
    """The alignment settings in align.json (``AlignConfig.settings()``), or None without align.json."""
    path = Path(aligned_dir) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))["settings"]
        if not isinstance(settings, dict):
            raise TypeError("'settings' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: unreadable alignment settings ({exc}); re-run `stylesurv align`") from None
    return dict(settings)


FACE_LABEL = 1  # masks/<pid>.png: 0 background, 1 face, 2 clothing, 3 other
