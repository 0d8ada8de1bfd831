"""The aligned-folder contract that `stylesurv align` writes and every later stage reads.

    ALIGNED/<patient_id>.png   the aligned R x R photo
    ALIGNED/masks/<patient_id>.png   labels 0 background, 1 face, 2 clothing, 3 other (REGIONS)
    ALIGNED/landmarks.csv   68 landmarks per patient in aligned coordinates
    ALIGNED/qc.csv   one row per patient: status, reason and ``usable`` (1 for photos later stages use)
    ALIGNED/align.json   the settings that made the folder
"""

from __future__ import annotations

import csv
from pathlib import Path

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
    folder = Path(aligned_dir) / "masks"
    found: dict[int, np.ndarray] = {}
    for i, pid in enumerate(patient_ids):
        path = patient_file(folder, pid)
        if path is not None and path.is_file():
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
def read_qc(aligned_dir: str | Path) -> list[dict[str, str]]:
    """The rows of an aligned folder's qc.csv, as dictionaries of strings."""
    path = Path(aligned_dir) / QC_FILE
    if not path.is_file():
        raise InputError(f"{path}: not found; run `stylesurv align` to make the aligned folder")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def usable_patients(aligned_dir: str | Path) -> list[str]:
    """Patient ids whose aligned image downstream stages should use (qc.csv's ``usable`` column)."""
    return [row["patient_id"] for row in read_qc(aligned_dir) if row["usable"] == "1"]


FACE_LABEL = 1  # masks/<pid>.png: 0 background, 1 face, 2 clothing, 3 other
