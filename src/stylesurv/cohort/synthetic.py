"""The synthetic portrait world: a cohort folder with known truth, written by `stylesurv synth`.

`make_world` draws every subject's hidden factors (and, for a cohort, survival); `write_world` renders the
portraits and writes the folder:

    clinical.csv         patient_id, age, sex (+ time, event, stage for a cohort)
    photos/<id>.jpg|png  aligned portraits, or with `unaligned` larger photos with the face anywhere
    landmarks.csv        the true 68 points in photo pixel coordinates (patient_id, x0, y0, ..., x67, y67)
    masks/<id>.png       label image of the aligned rendering (0 background, 1 face, 2 clothing, 3 other)
    truth.csv            every hidden factor, the true linear predictors, the uncensored event time and,
                         with `confounded`, the split (train/test) in which background tracks the outcome
    oracle.json          C-index of the true face-only and face+clinical linear predictors (cohort only)
    synth.json           the arguments that wrote the folder and every file's SHA-256

Everything derives from the seed, so the same arguments write the same bytes.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from stylesurv.cohort.render import Rendering, render_aligned, render_unaligned
from stylesurv.cohort.simulate import KINDS, SurvivalModel, oracle_cindex, sample_factors, simulate_survival
from stylesurv.core.atomic import atomic_dir, write_json_atomic
from stylesurv.core.console import make_progress, warn
from stylesurv.core.errors import InputError
from stylesurv.core.hashing import sha256_file
from stylesurv.core.workers import worker_pool

PHOTO_FORMATS = ("jpg", "png")
CONFOUNDED_TRAIN_FRACTION = 0.7
SERIAL_BELOW = 400  # render in-process below this many subjects (a process pool costs seconds to start)
CHUNK = 50


@dataclass(frozen=True)
class World:
    """The subjects of one synthetic world: truth (all factors) and the clinical table a user would see."""

    kind: str
    seed: int
    truth: pd.DataFrame
    clinical: pd.DataFrame
    oracle: dict[str, float] | None = None
    model: SurvivalModel = field(default_factory=SurvivalModel)

    def subject(self, index: int) -> dict[str, float]:
        """One subject's factor row as a plain dict (what the renderer takes)."""
        return self.truth.iloc[index].to_dict()


def check_resolution(resolution: int) -> None:
    """Raise InputError unless `resolution` is a power of two between 32 and 256."""
    if resolution not in (32, 64, 128, 256):
        raise InputError(f"--resolution must be a power of two from 32 to 256, got {resolution}")


def make_world(
    kind: str,
    n: int,
    seed: int,
    confounded: bool = False,
    model: SurvivalModel | None = None,
    beyond_face: bool = False,
) -> World:
    """Draw a world of `n` subjects: factors, true linear predictors and (for a cohort) survival.

    With `confounded` (cohort only) a random 70 % training split gets backgrounds that follow the outcome
    (warm red for deaths before the median time, cool blue otherwise, 90 % of the time); the test split
    keeps independent backgrounds.  The split is the `split` column of truth.csv.  The health factors
    change only pixels of the face (truth column `face_bound_effects` = 1), so the face is where a model
    should find the signal; with `beyond_face` (`face_bound_effects` = 0) cachexia also narrows the outline
    and the neck and pallor tints all skin, as in cohorts written before that column existed (see
    `render.beyond_face`).  The factors, outcomes and everything else are the same in both.
    """
    if kind not in KINDS:
        raise InputError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if confounded and kind != "cohort":
        raise InputError("--confounded needs --kind cohort: the population has no outcomes to confound")
    model = model or SurvivalModel()
    truth = sample_factors(kind, n, seed)
    truth["face_bound_effects"] = 0.0 if beyond_face else 1.0
    truth["lp_face"] = model.face_lp(truth)
    truth["lp_clinical"] = model.clinical_lp(truth)
    truth["lp"] = model.linear_predictor(truth)
    sex = np.where(truth["sex"] == 1, "M", "F")
    clinical = pd.DataFrame({"patient_id": truth["patient_id"], "age": truth["age"].round(1), "sex": sex})
    if kind == "population":
        return World(kind=kind, seed=seed, truth=truth, clinical=clinical, model=model)
    draw = simulate_survival(truth["lp"].to_numpy(), model, seed)
    truth["event_time"] = draw.event_time
    clinical.insert(1, "time", draw.time)
    clinical.insert(2, "event", draw.event)
    clinical["stage"] = truth["stage"].astype(int)
    if confounded:
        _confound_background(truth, draw.time, draw.event, seed)
    oracle = {
        "face_only": oracle_cindex(draw.time, draw.event, truth["lp_face"].to_numpy()),
        "face_clinical": oracle_cindex(draw.time, draw.event, truth["lp"].to_numpy()),
        "n": int(n),
        "events": int(draw.event.sum()),
    }
    return World(kind=kind, seed=seed, truth=truth, clinical=clinical, oracle=oracle, model=model)


def _confound_background(truth: pd.DataFrame, time: np.ndarray, event: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    n = len(truth)
    train = rng.uniform(size=n) < CONFOUNDED_TRAIN_FRACTION
    early = (event == 1) & (time < np.median(time[train])) if train.any() else np.zeros(n, bool)
    follows = rng.uniform(size=n) < 0.9
    warm = np.where(follows, early, ~early)
    hue = np.where(warm, 0.0, 0.6) + rng.normal(0.0, 0.02, n)
    truth["split"] = np.where(train, "train", "test")
    truth.loc[train, "background_hue"] = hue[train] % 1.0
    truth.loc[train, "background_saturation"] = rng.uniform(0.35, 0.55, n)[train]


def subject_rng(world_seed: int, kind: str, index: int) -> np.random.Generator:
    """The generator of one subject's sensor noise (independent of n and of the worker that renders it)."""
    return np.random.default_rng(np.random.SeedSequence([world_seed, KINDS.index(kind), 99, index]))


def finish_photo(
    rendering: Rendering, noise_sigma: float, jpeg_quality: int, fmt: str, rng: np.random.Generator
) -> bytes:
    """Add sensor noise, quantise to 8 bits and encode (JPEG at the subject's quality, or PNG)."""
    noisy = rendering.rgb + noise_sigma * rng.standard_normal(rendering.rgb.shape)
    image = Image.fromarray(np.clip(np.round(noisy * 255.0), 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    if fmt == "jpg":
        image.save(buf, format="JPEG", quality=int(jpeg_quality))
    else:
        image.save(buf, format="PNG")
    return buf.getvalue()


def to_uint8(rendering: Rendering) -> np.ndarray:
    """A rendering as an 8-bit RGB array, no noise."""
    return np.clip(np.round(rendering.rgb * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Job:
    subjects: list[dict[str, float]]
    indices: list[int]
    kind: str
    seed: int
    resolution: int
    unaligned: bool
    fmt: str
    folder: str


def _render_job(job: _Job) -> list[list[float]]:
    """Render, encode and write one chunk of subjects; returns their photo landmarks (flattened rows)."""
    folder = Path(job.folder)
    rows = []
    for s, index in zip(job.subjects, job.indices, strict=True):
        aligned, aligned_lm = render_aligned(s, job.resolution)
        photo, landmarks = (aligned, aligned_lm) if not job.unaligned else render_unaligned(s, job.resolution)
        rng = subject_rng(job.seed, job.kind, index)
        data = finish_photo(photo, float(s["noise_sigma"]), int(s["jpeg_quality"]), job.fmt, rng)
        pid = str(s["patient_id"])
        (folder / "photos" / f"{pid}.{job.fmt}").write_bytes(data)
        buf = io.BytesIO()
        Image.fromarray(aligned.labels, "L").save(buf, format="PNG")
        (folder / "masks" / f"{pid}.png").write_bytes(buf.getvalue())
        rows.append([float(v) for v in np.round(landmarks, 3).ravel()])
    return rows


SYNTH_RECORD = "synth.json"  # what synth wrote: its settings and every file's hash


def _file_hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (but the record itself) by relative path -> SHA-256."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != SYNTH_RECORD
    }


def _changed_since_written(folder: Path) -> str | None:
    """The first file added or changed in ``folder`` since synth wrote it (None: none; an old record
    without hashes cannot tell, and is replaced with a warning)."""
    try:
        written = json.loads((folder / SYNTH_RECORD).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return SYNTH_RECORD
    if not isinstance(written, dict):
        warn(f"{folder / SYNTH_RECORD} records no file hashes (an older stylesurv); replacing the folder")
        return None
    for name, digest in _file_hashes(folder).items():
        if written.get(name) != digest:
            return name
    return None


def write_world(
    world: World,
    out: str | os.PathLike[str],
    resolution: int = 64,
    unaligned: bool = False,
    fmt: str = "jpg",
    workers: int = 0,
    force: bool = False,
) -> Path:
    """Render every subject and write the cohort folder `out` atomically.

    An earlier synthetic folder is replaced only when nothing in it was added or changed since `synth`
    wrote it (synth.json records every file's hash); otherwise, unless ``force``, an InputError names the
    first added or changed file.  A folder `synth` did not make is always refused.  `workers` = 0 picks
    the CPU count for large worlds and renders in-process for small ones.
    """
    check_resolution(resolution)
    if fmt not in PHOTO_FORMATS:
        raise InputError(f"--format must be one of {', '.join(PHOTO_FORMATS)}, got {fmt!r}")
    n = len(world.truth)
    if workers <= 0:
        workers = 1 if n < SERIAL_BELOW else min(os.cpu_count() or 1, 8)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / SYNTH_RECORD).exists():
            raise InputError(
                f"{out} exists and is not a synthetic world folder: choose a new --out or remove it"
            )
        changed = None if force else _changed_since_written(out)
        if changed:
            raise InputError(
                f"{out / changed}: added or changed since `synth` wrote {out}; move your files elsewhere, "
                "choose a new --out, or replace the folder anyway with --force"
            )
    with atomic_dir(out) as tmp:
        (tmp / "photos").mkdir()
        (tmp / "masks").mkdir()
        records = world.truth.to_dict(orient="records")
        jobs = [
            _Job(records[i : i + CHUNK], list(range(i, min(i + CHUNK, n))), world.kind, world.seed,
                 resolution, unaligned, fmt, str(tmp))
            for i in range(0, n, CHUNK)
        ]  # fmt: skip
        results: list[list[list[float]]] = []
        with make_progress() as progress:
            task = progress.add_task(f"rendering {n} portraits", total=n)
            if workers == 1:
                for job in jobs:
                    results.append(_render_job(job))
                    progress.advance(task, len(job.indices))
            else:
                with worker_pool(workers) as pool:
                    for job, rows in zip(jobs, pool.map(_render_job, jobs), strict=True):
                        results.append(rows)
                        progress.advance(task, len(job.indices))
        coords = np.array([row for rows in results for row in rows]).reshape(n, 136)
        columns = [f"{axis}{k}" for k in range(68) for axis in ("x", "y")]
        landmarks = pd.DataFrame(coords, columns=columns)
        landmarks.insert(0, "patient_id", world.truth["patient_id"].to_numpy())
        landmarks.to_csv(tmp / "landmarks.csv", index=False)
        world.clinical.to_csv(tmp / "clinical.csv", index=False)
        world.truth.to_csv(tmp / "truth.csv", index=False, float_format="%.6g")
        if world.oracle is not None:
            write_json_atomic(tmp / "oracle.json", {**world.oracle, "model": asdict(world.model)})
        write_json_atomic(
            tmp / SYNTH_RECORD,
            {"kind": world.kind, "n": n, "seed": world.seed, "resolution": resolution, "unaligned": unaligned,
             "format": fmt, "confounded": "split" in world.truth.columns,
             "face_bound": bool(world.truth["face_bound_effects"].eq(1.0).all()),
             "files": _file_hashes(tmp)},
        )  # fmt: skip
    return out


# ----------------------------------------------------------------------------------------------- preview
GRADED_FACTORS: dict[str, Sequence[float]] = {
    "cachexia": (0.0, 0.25, 0.5, 0.75, 1.0),
    "pallor": (0.0, 0.25, 0.5, 0.75, 1.0),
    "periorbital": (0.0, 0.25, 0.5, 0.75, 1.0),
    "age": (25.0, 40.0, 55.0, 70.0, 85.0),
    "light_strength": (0.0, 0.12, 0.25, 0.35, 0.45),
    "yaw": (-0.1, -0.05, 0.0, 0.05, 0.1),
    "roll": (-0.12, -0.06, 0.0, 0.06, 0.12),
    "background_hue": (0.0, 0.2, 0.4, 0.6, 0.8),
    "clothing_pattern": (0.0, 1.0, 2.0, 3.0, 0.0),
}


def graded_subject(base: dict[str, float], factor: str, value: float) -> dict[str, float]:
    """A copy of `base` with one factor set to `value` (the health factors start from a healthy face)."""
    s = dict(base)
    s[factor] = value
    return s


def contact_sheet(world: World, size: int = 128, count: int = 24, columns: int = 6) -> Image.Image:
    """A preview: `count` aligned portraits of the world, then one row per factor graded low to high."""
    count = min(count, len(world.truth))
    tiles = [to_uint8(render_aligned(world.subject(i), size)[0]) for i in range(count)]
    rows_top = -(-count // columns)
    label_w = 110
    grades = len(next(iter(GRADED_FACTORS.values())))
    width = max(columns * size, label_w + grades * size)
    height = rows_top * size + 8 + len(GRADED_FACTORS) * size
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    for i, tile in enumerate(tiles):
        sheet.paste(Image.fromarray(tile), ((i % columns) * size, (i // columns) * size))
    base = world.subject(0)
    base.update(cachexia=0.0, pallor=0.0, periorbital=0.0, age=45.0, yaw=0.0, roll=0.0, glasses=0)
    base.update(skin_tone=0.3, hair_style=0, hair_colour=2, background_texture=0, clothing_pattern=0)
    draw = ImageDraw.Draw(sheet)
    top = rows_top * size + 8
    for r, (factor, values) in enumerate(GRADED_FACTORS.items()):
        y = top + r * size
        draw.text((6, y + size // 2 - 6), factor, fill=(0, 0, 0))
        for c, value in enumerate(values):
            tile = to_uint8(render_aligned(graded_subject(base, factor, value), size)[0])
            sheet.paste(Image.fromarray(tile), (label_w + c * size, y))
    return sheet
