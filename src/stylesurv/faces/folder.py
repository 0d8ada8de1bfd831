"""Align a whole cohort into an aligned folder, resumably (`stylesurv.core.aligned` reads it back).

The aligned folder (layout contract): ``<patient_id>.png`` (R x R RGB), ``landmarks.csv`` (patient_id,
x0, y0, ..., x67, y67 in aligned pixels), ``qc.csv`` (one row per patient of the cohort: status, reason,
``usable`` and measurements), ``masks/<patient_id>.png`` (labels of `stylesurv.faces.mask`) and
``align.json`` (settings and counts).  Each photo's result is also kept in ``.records/<patient_id>.json``
with a key hashing the settings, the photo's bytes and any given landmarks; a rerun skips every photo whose
key and files are unchanged, so an interrupted run resumes where it stopped.  Every file is written
atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylesurv.cohort.images import IMAGE_EXTENSIONS, read_image
from stylesurv.cohort.table import CLINICAL_FILE, PHOTOS_DIR, find_photos, read_clinical
from stylesurv.core.aligned import (
    LANDMARK_COLUMNS,
    LANDMARKS_FILE,
    MASKS_DIR,
    QC_COLUMNS,
    QC_FILE,
    SETTINGS_FILE,
    read_landmarks_csv,
)
from stylesurv.core.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from stylesurv.core.config import FieldNames
from stylesurv.core.console import make_progress
from stylesurv.core.csvcells import safe_cell
from stylesurv.core.errors import InputError
from stylesurv.core.hashing import hash_config, sha256_file
from stylesurv.core.ids import patient_id_problem
from stylesurv.core.workers import worker_pool
from stylesurv.faces.align import AlignedFace, align_face, check_resolution
from stylesurv.faces.detect import detect_faces, load_models
from stylesurv.faces.mask import MaskShape, region_mask
from stylesurv.faces.qc import FATAL_STATUSES, QCResult, QCThresholds, assess, pose_asymmetry

ALIGN_VERSION = 1  # bump when a change to the code changes the aligned output
RECORDS_DIR = ".records"


@dataclass(frozen=True)
class AlignConfig:
    """The align stage's one config: the ``[align]`` section of a run's TOML, the defaults of
    `stylesurv align`, and everything that determines the aligned output (its hash keys the per-photo
    resume records)."""

    resolution: int = 0  # output side R in pixels (32-1024); 0: the generator's resolution
    upsample: int = 1  # times dlib's detector doubles the photo (1 finds faces down to about 40 px)
    cnn: bool = False  # dlib's CNN face detector instead of HOG: slower, better on hard photos
    detect_max_side: int = 640  # photos are shrunk to this longer side for detection only
    supersample: int = 4  # most oversampling of the face square before antialiased downsampling
    qc: QCThresholds = field(default_factory=QCThresholds)
    mask: MaskShape = field(default_factory=MaskShape)

    def validate(self, names: Mapping[str, str] | None = None) -> AlignConfig:
        """Self, or an InputError naming the first bad field (``align.<field>``, or as ``names`` calls it)."""
        name = FieldNames("align", names)
        if self.resolution == 0:
            raise InputError(
                f"{name('resolution')} is not set: give the aligned size, or a generator to take it from"
            )
        try:
            check_resolution(self.resolution)
        except ValueError as exc:
            raise InputError(f"{name('resolution')}: {exc}") from None
        if self.upsample < 0:
            raise InputError(f"{name('upsample')} must be >= 0, got {self.upsample}")
        if self.detect_max_side < 64:
            raise InputError(f"{name('detect_max_side')} must be >= 64, got {self.detect_max_side}")
        if self.supersample < 1:
            raise InputError(f"{name('supersample')} must be >= 1, got {self.supersample}")
        return self

    def for_generator(self, resolution: int) -> AlignConfig:
        """Self with the generator's resolution where none is set."""
        return self if self.resolution else replace(self, resolution=resolution)

    def settings(self) -> dict[str, Any]:
        """What align.json records (``from_settings`` reads it back)."""
        return {"version": ALIGN_VERSION, **asdict(self)}

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> AlignConfig:
        """The config ``settings()`` recorded (align.json); TypeError/ValueError on a malformed record."""
        fields = dict(settings)
        fields.pop("version", None)
        qc, mask = dict(fields.pop("qc", {})), dict(fields.pop("mask", {}))
        if "usable" in qc:
            qc["usable"] = tuple(qc["usable"])
        return cls(**fields, qc=QCThresholds(**qc), mask=MaskShape(**mask))

    def output_key(self) -> str:
        """Hash of the settings that change images, masks or statuses (not which statuses are usable)."""
        settings = self.settings()
        settings["qc"] = {name: value for name, value in settings["qc"].items() if name != "usable"}
        return hash_config(settings)


@dataclass(frozen=True)
class PhotoTask:
    """One patient to align: the photo (None when the cohort has none) and optional given landmarks."""

    patient_id: str
    photo: str | None  # path to open
    photo_name: str  # as shown in qc.csv: relative to the cohort folder
    landmarks: tuple[float, ...] | None  # 136 values x0, y0, ... in photo pixels, or None for the detector
    key: str


@dataclass
class AlignSummary:
    """What an align run did: counts per status and how many photos were reused from a previous run."""

    out_dir: Path
    counts: dict[str, int]
    usable: int
    reused: int
    total: int

    @property
    def failed(self) -> int:
        """Photos whose status is not ``ok`` (flagged or without an aligned image)."""
        return self.total - self.counts.get("ok", 0)

    def message(self) -> str:
        parts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items()) if status != "ok")
        detail = f" ({parts})" if parts else ""
        return (
            f"aligned {self.total} photo(s) into {self.out_dir} ({self.reused} unchanged, skipped); "
            f"{self.failed} failed QC{detail}, {self.usable} usable downstream; see {self.out_dir / QC_FILE}"
        )


# ----------------------------------------------------------------------------------------------- cohort
def cohort_photos(cohort_dir: str | Path) -> dict[str, Path | None]:
    """Every patient of a cohort folder mapped to its photo (None when it has none), in table order.

    Patients come from ``clinical.csv`` when present (its `photo` column or ``photos/<id>.<ext>``), else
    from the image files in ``photos/``.
    """
    cohort_dir = Path(cohort_dir)
    if (cohort_dir / CLINICAL_FILE).is_file():
        table = read_clinical(cohort_dir)
        ids = list(table.rows)
        found = find_photos(cohort_dir, ids, table.photo_paths)
    else:
        photos_dir = cohort_dir / PHOTOS_DIR
        if not photos_dir.is_dir():
            raise InputError(
                f"{cohort_dir}: neither {CLINICAL_FILE} nor a {PHOTOS_DIR}/ folder found; "
                f"a cohort folder holds {CLINICAL_FILE} and {PHOTOS_DIR}/<patient_id>.jpg"
            )
        ids = sorted(
            {
                p.stem
                for p in photos_dir.iterdir()
                if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not patient_id_problem(p.stem)
            }
        )
        found = find_photos(cohort_dir, ids)
    if not ids:
        raise InputError(
            f"{cohort_dir}: the cohort has no patients (no rows in {CLINICAL_FILE} or no photos)"
        )
    return {pid: found.get(pid) for pid in ids}


def landmarks_table(landmarks: Mapping[str, np.ndarray]) -> str:
    """CSV text of patient id -> [68, 2] landmarks, in the landmarks.csv layout."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("patient_id", *LANDMARK_COLUMNS))
    for pid, points in landmarks.items():
        writer.writerow((pid, *(f"{v:.4f}" for v in np.asarray(points, dtype=np.float64).reshape(-1))))
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- one photo
def align_photo(
    image: np.ndarray, config: AlignConfig, landmarks: np.ndarray | None = None
) -> tuple[QCResult, AlignedFace | None, dict[str, Any]]:
    """Detect (unless ``landmarks`` are given), align and QC one RGB photo.

    Returns the QC verdict, the aligned face (None when fatal) and measurements for qc.csv.
    """
    facts: dict[str, Any] = {"landmarks_source": "given" if landmarks is not None else "dlib", "n_faces": ""}
    if landmarks is None:
        faces = detect_faces(image, config.upsample, config.cnn, config.detect_max_side)
        facts["n_faces"] = len(faces)
        if not faces:
            how = "CNN" if config.cnn else f"HOG, upsample {config.upsample}"
            return (
                QCResult(
                    "no_face",
                    f"no face found (dlib {how}); try upsample 2 or the CNN detector "
                    "(align.upsample, align.cnn)",
                ),
                None,
                facts,
            )
        landmarks = faces[0].landmarks
    try:
        aligned = align_face(image, landmarks, config.resolution, config.supersample)
    except ValueError as exc:
        return QCResult("no_face", f"given landmarks do not fit the photo: {exc}"), None, facts
    asymmetry = pose_asymmetry(landmarks)
    facts.update(
        face_size_px=round(config.resolution / aligned.upsample, 1),
        upsample=round(aligned.upsample, 3),
        pose_asymmetry=round(asymmetry, 3),
    )
    n_faces = facts["n_faces"] or 1
    return assess(n_faces, aligned.upsample, asymmetry, config.qc), aligned, facts


def process_task(task: PhotoTask, config: AlignConfig, out_dir: Path) -> dict[str, Any]:
    """Align one patient's photo, write its image and mask atomically, and return its record."""
    record: dict[str, Any] = {"patient_id": task.patient_id, "key": task.key, "photo": task.photo_name}
    image_path, mask_path = out_dir / f"{task.patient_id}.png", out_dir / MASKS_DIR / f"{task.patient_id}.png"
    aligned = None
    if task.photo is None:
        verdict, facts = QCResult("unreadable", "no photo for this patient (see `stylesurv validate`)"), {}
    else:
        try:
            image, notes = read_image(task.photo)
        except InputError as exc:
            verdict, facts = QCResult("unreadable", str(exc)), {}
        else:
            given = None if task.landmarks is None else np.asarray(task.landmarks).reshape(68, 2)
            try:
                verdict, aligned, facts = align_photo(image, config, given)
            except RuntimeError as exc:  # dlib reports its internal failures as RuntimeError
                verdict, facts = QCResult("unreadable", f"face detection failed ({exc})"), {}
            facts["notes"] = "; ".join(notes)
    record.update(status=verdict.status, reason=verdict.reason, **facts)
    if aligned is None:
        image_path.unlink(missing_ok=True)
        mask_path.unlink(missing_ok=True)
        record["landmarks"] = None
    else:
        write_bytes_atomic(image_path, _png_bytes(aligned.image))
        write_bytes_atomic(
            mask_path, _png_bytes(region_mask(aligned.landmarks, config.resolution, config.mask))
        )
        record["landmarks"] = np.round(aligned.landmarks, 4).tolist()
    return record


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _process_batch(tasks: list[PhotoTask], config: AlignConfig, out_dir: Path) -> list[dict[str, Any]]:
    return [process_task(task, config, out_dir) for task in tasks]


# ------------------------------------------------------------------------------------------------ cohort
def align_cohort(
    cohort_dir: str | Path,
    out_dir: str | Path,
    config: AlignConfig,
    landmarks_csv: str | Path | None = None,
    workers: int = 1,
) -> AlignSummary:
    """Align every patient's photo of a cohort folder into ``out_dir`` (see the module docstring).

    ``landmarks_csv``: given 68-point landmarks in photo pixels; patients missing from it use the detector.
    ``workers``: processes (1 runs in this process).  Photos already aligned with the same settings are
    skipped.  Never raises for a bad photo: it gets a QC status and a reason.
    """
    config.validate()
    out_dir, cohort_dir = Path(out_dir), Path(cohort_dir)
    photos = cohort_photos(cohort_dir)
    given = read_landmarks_csv(landmarks_csv) if landmarks_csv is not None else {}
    output_key = config.output_key()
    tasks = []
    for pid, photo in photos.items():
        points = given.get(pid)
        content = sha256_file(photo) if photo is not None else None
        key = hash_config({"settings": output_key, "photo": content, "landmarks": _rounded(points)})
        flat = None if points is None else tuple(float(v) for v in points.reshape(-1))
        name = "" if photo is None else Path(os.path.relpath(photo, cohort_dir)).as_posix()
        tasks.append(PhotoTask(pid, None if photo is None else str(photo), name, flat, key))

    records = {pid: record for pid, record in _load_records(out_dir, tasks)}
    todo = [task for task in tasks if task.patient_id not in records]
    if todo:
        for record in _run(todo, config, out_dir, workers):
            write_json_atomic(out_dir / RECORDS_DIR / f"{record['patient_id']}.json", record)
            records[record["patient_id"]] = record

    ordered = [records[task.patient_id] for task in tasks]
    _write_tables(out_dir, ordered, config)
    counts = dict(Counter(record["status"] for record in ordered))
    usable = sum(counts.get(status, 0) for status in config.qc.usable)
    write_json_atomic(out_dir / SETTINGS_FILE, {"settings": config.settings(), "counts": counts})
    return AlignSummary(out_dir, counts, usable=usable, reused=len(tasks) - len(todo), total=len(tasks))


def _rounded(points: np.ndarray | None) -> list[float] | None:
    return None if points is None else [round(float(v), 4) for v in points.reshape(-1)]


def _load_records(out_dir: Path, tasks: list[PhotoTask]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Records of a previous run whose key matches and whose files are all still there."""
    for task in tasks:
        path = out_dir / RECORDS_DIR / f"{task.patient_id}.json"
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("key") != task.key:
            continue
        if record.get("status") not in FATAL_STATUSES and not (
            (out_dir / f"{task.patient_id}.png").is_file()
            and (out_dir / MASKS_DIR / f"{task.patient_id}.png").is_file()
        ):
            continue
        yield task.patient_id, record


def _run(
    tasks: list[PhotoTask], config: AlignConfig, out_dir: Path, workers: int
) -> Iterator[dict[str, Any]]:
    """Process tasks with a progress bar, in this process or in a pool of ``workers`` processes."""
    with make_progress() as progress:
        bar = progress.add_task("aligning faces", total=len(tasks))
        if workers <= 1 or len(tasks) == 1:
            for task in tasks:
                yield process_task(task, config, out_dir)
                progress.advance(bar)
            return
        # small batches amortise the per-call overhead
        size = max(1, min(8, math.ceil(len(tasks) / (4 * workers))))
        batches = [tasks[i : i + size] for i in range(0, len(tasks), size)]
        pool = worker_pool(min(workers, len(batches)), initializer=load_models, initargs=(config.cnn,))
        with pool:
            futures = [pool.submit(_process_batch, batch, config, out_dir) for batch in batches]
            for future in as_completed(futures):
                results = future.result()
                yield from results
                progress.advance(bar, len(results))


def _write_tables(out_dir: Path, records: list[dict[str, Any]], config: AlignConfig) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=QC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {key: safe_cell(value) for key, value in record.items() if key != "patient_id"}
        writer.writerow(
            {**row, "patient_id": record["patient_id"], "usable": int(record["status"] in config.qc.usable)}
        )
    write_text_atomic(out_dir / QC_FILE, buffer.getvalue())
    aligned = {r["patient_id"]: np.asarray(r["landmarks"]) for r in records if r.get("landmarks") is not None}
    write_text_atomic(out_dir / LANDMARKS_FILE, landmarks_table(aligned))


def safe_worker_count(workers: int) -> int:
    """``workers`` if positive, else all CPUs this process may use."""
    if workers > 0:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
