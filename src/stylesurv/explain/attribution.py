"""Where in the picture the health direction acts: shares of pixel-change energy per mask region.

For each patient, the change energy of a step along a direction is |G(w + eps * d) - G(w)|^2 summed over
colour channels, per pixel.  Its share inside the face, background, clothing and other regions of the
patient's mask (aligned/masks/<id>.png: 0 background, 1 face, 2 clothing, 3 other) is averaged over
patients.  The same shares for random unit directions with the same step length are the baseline: a
direction that truly concerns the face puts more of its energy there than a random one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylesurv.cohort.table import patient_id_problem
from stylesurv.console import warn
from stylesurv.errors import InputError
from stylesurv.explain.direction import HealthDirection
from stylesurv.explain.edit import broadcast_ws, synthesize

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


def change_energy(
    generator: Any, codes: np.ndarray, offset: np.ndarray, base: np.ndarray | None = None, batch: int = 16
) -> np.ndarray:
    """Per-pixel energy [N, R, R] of the image change when ``offset`` is added to each code.

    ``base`` (the unedited synthesis [N, 3, R, R]) can be passed to avoid recomputing it.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if base is None:
        base = synthesize(generator, broadcast_ws(codes, generator.num_ws), batch)
    moved = synthesize(generator, broadcast_ws(codes + offset[None], generator.num_ws), batch)
    return ((moved - base) ** 2).sum(axis=1)


def region_shares(energy: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each patient's energy in each region [N, len(REGIONS)]; rows sum to 1 (NaN if no change)."""
    n = len(energy)
    flat_e = energy.reshape(n, -1).astype(np.float64)
    flat_m = masks.reshape(n, -1)
    sums = np.stack([np.where(flat_m == label, flat_e, 0.0).sum(axis=1) for label in range(len(REGIONS))], 1)
    total = sums.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, sums / total, np.nan)


def mean_shares(shares: np.ndarray) -> np.ndarray:
    """Mean over the patients whose image changed at all (rows without NaN); NaN when none did."""
    changed = shares[np.isfinite(shares).all(axis=1)]
    return changed.mean(axis=0) if len(changed) else np.full(shares.shape[1], np.nan)


def random_unit_directions(shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    """``count`` isotropic random unit vectors of ``shape`` [count, *shape], seeded."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, int(np.prod(shape))))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.reshape(count, *shape)


@dataclass
class Attribution:
    """Mean energy shares per region of the health direction and of random directions."""

    health: dict[str, float]  # region -> mean share over patients
    random_mean: dict[str, float]  # region -> mean over random directions of the mean share
    random_sd: dict[str, float]  # region -> SD over random directions
    area: dict[str, float]  # region -> mean share of pixels (what uniform change would give)
    per_patient: np.ndarray  # [N, len(REGIONS)] shares of the health direction
    step_sd: float  # step length in health-attribute SDs
    n_random: int
    n_fallback_masks: int

    def to_json(self) -> dict[str, Any]:
        return {
            "regions": list(REGIONS),
            "health": self.health,
            "random_mean": self.random_mean,
            "random_sd": self.random_sd,
            "area": self.area,
            "step_sd": self.step_sd,
            "n_random": self.n_random,
            "n_patients": int(len(self.per_patient)),
            "n_fallback_masks": self.n_fallback_masks,
        }


def attribute_regions(
    generator: Any,
    codes: np.ndarray,
    direction: HealthDirection,
    masks: np.ndarray,
    n_random: int = 8,
    step_sd: float = 1.0,
    seed: int = 0,
    batch: int = 16,
    n_fallback_masks: int = 0,
) -> Attribution:
    """Energy shares per region of a ``step_sd`` step along the health direction and along random ones."""
    codes = np.asarray(codes, dtype=np.float64)
    base = synthesize(generator, broadcast_ws(codes, generator.num_ws), batch)
    step = step_sd * direction.scale
    health = region_shares(change_energy(generator, codes, step * direction.vector, base, batch), masks)
    random_means = []
    for vector in random_unit_directions(direction.shape, n_random, seed):
        shares = region_shares(change_energy(generator, codes, step * vector, base, batch), masks)
        random_means.append(mean_shares(shares))
    random_arr = np.array(random_means).reshape(n_random, len(REGIONS))
    area = np.stack([(masks == label).mean(axis=(1, 2)) for label in range(len(REGIONS))], 1).mean(axis=0)
    health_mean = mean_shares(health)
    return Attribution(
        health=dict(zip(REGIONS, map(float, health_mean), strict=True)),
        random_mean=dict(
            zip(REGIONS, map(float, random_arr.mean(axis=0) if n_random else [np.nan] * 4), strict=True)
        ),
        random_sd=dict(
            zip(REGIONS, map(float, random_arr.std(axis=0) if n_random else [np.nan] * 4), strict=True)
        ),
        area=dict(zip(REGIONS, map(float, area), strict=True)),
        per_patient=health,
        step_sd=step_sd,
        n_random=n_random,
        n_fallback_masks=n_fallback_masks,
    )
