"""Where in the picture the health direction acts: shares of pixel-change energy per mask region.

For each patient, the change energy of a step along a direction is |G(w + eps * d) - G(w)|^2 summed over
colour channels, per pixel, at the same constant noise (only the code changes).  Its share inside the face,
background, clothing and other regions of the patient's mask (aligned/masks/<id>.png: 0 background, 1 face,
2 clothing, 3 other) is averaged over patients.  The same shares for random unit directions with the same
step length are the baseline: a direction that truly concerns the face puts more of its energy there than
a random one does.

Two further views of the same edit:

* the face with a contour margin: the face mask dilated by ``face_margin_px`` (1/32 of the image side,
  2 px at 64 px).  The mask is the unedited patient's, so a change of the face's shape (the synthetic
  world's cachexia narrows cheeks and temples) moves an anti-aliased contour whose change falls on both
  sides of the mask's edge; in the synthetic world's own renderings only about half of the true facial
  change lies strictly inside the mask.  The strict share stays the primary number; this one is reported
  next to it, with its own area and random baseline, so it can be judged fairly.
* per W+ layer group: the part of the edit in each group's layers alone (the full edit is their sum), its
  share of the summed energy and its region shares, which says which layers carry the image change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from stylesurv.core.aligned import REGIONS
from stylesurv.explain.direction import HealthDirection, layer_groups
from stylesurv.explain.result import AttributionSummary, GroupEdit, MarginShares, RegionShares
from stylesurv.gan.protocol import GeneratorLike
from stylesurv.gan.render import broadcast_ws, synthesize


def change_energy(
    generator: GeneratorLike,
    codes: np.ndarray,
    offset: np.ndarray,
    base: np.ndarray | None = None,
    batch: int = 16,
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
    return np.stack([region_share(energy, masks == label) for label in range(len(REGIONS))], 1)


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


def face_margin_px(resolution: int) -> int:
    """The contour margin of the face region: 1/32 of the image side, at least 1 px (2 px at 64 px)."""
    return max(1, round(resolution / 32))


def face_with_margin(masks: np.ndarray, margin: int) -> np.ndarray:
    """Boolean [N, R, R]: each mask's face label dilated by ``margin`` pixels (4-connected steps)."""
    face = np.asarray(masks) == REGIONS.index("face")
    if margin <= 0:
        return face
    cross = ndimage.generate_binary_structure(2, 1)[None]  # dilate within each image, never across patients
    return ndimage.binary_dilation(face, structure=cross, iterations=margin)


def region_share(energy: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Share of each patient's energy inside a boolean ``region`` [N, R, R]; NaN where nothing changed."""
    flat_e = energy.reshape(len(energy), -1).astype(np.float64)
    inside = np.where(region.reshape(len(region), -1), flat_e, 0.0).sum(axis=1)
    total = flat_e.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def _region_dict(values: np.ndarray) -> dict[str, float]:
    return dict(zip(REGIONS, map(float, values), strict=True))


@dataclass
class EditShares:
    """Where one edit (a fixed latent offset added to every patient's code) changes the image."""

    shares: np.ndarray  # [N, len(REGIONS)] per-patient energy shares per mask region
    face_margin: np.ndarray  # [N] per-patient share inside the face mask with its contour margin
    energy: np.ndarray  # [N] per-patient total change energy

    @property
    def mean(self) -> dict[str, float]:
        return _region_dict(mean_shares(self.shares))

    @property
    def mean_face_margin(self) -> float:
        return float(mean_shares(self.face_margin[:, None])[0])

    def summary(self) -> RegionShares:
        """The mean shares over patients (summary.json)."""
        return RegionShares(self.mean, self.mean_face_margin)


def edit_shares(
    generator: GeneratorLike,
    codes: np.ndarray,
    offset: np.ndarray,
    masks: np.ndarray,
    wide_face: np.ndarray,
    base: np.ndarray | None = None,
    batch: int = 16,
) -> EditShares:
    """Region shares, face-with-margin share and total energy of adding ``offset`` to every code."""
    energy = change_energy(generator, codes, offset, base, batch)
    return EditShares(region_shares(energy, masks), region_share(energy, wide_face), energy.sum(axis=(1, 2)))


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
    margin_px: int = 0  # contour margin of the face-with-margin region
    face_margin: dict[str, Any] | None = None  # definition, health, random_mean, random_sd, area
    groups: dict[str, GroupEdit] | None = None  # W+ layer group -> its part of the edit

    def summary(self) -> AttributionSummary:
        """The mean shares, baselines and parts (summary.json: no per-patient array)."""
        margin = MarginShares(**self.face_margin) if self.face_margin is not None else None
        return AttributionSummary(
            regions=tuple(REGIONS),
            health=self.health,
            random_mean=self.random_mean,
            random_sd=self.random_sd,
            area=self.area,
            step_sd=self.step_sd,
            n_random=self.n_random,
            n_patients=int(len(self.per_patient)),
            n_fallback_masks=self.n_fallback_masks,
            face_margin_px=self.margin_px if margin is not None else None,
            face_with_margin=margin,
            groups=self.groups or None,
        )


def group_edits(
    generator: GeneratorLike,
    codes: np.ndarray,
    offset: np.ndarray,
    masks: np.ndarray,
    wide_face: np.ndarray,
    base: np.ndarray,
    batch: int = 16,
) -> dict[str, GroupEdit]:
    """Per W+ layer group: the edit's part in that group's layers alone (the full edit is their sum).

    ``weight`` is the group's share of the offset's squared norm, ``energy_share`` its share of the image
    change energy summed over the groups, then its region shares and face-with-margin share.  Groups the
    offset does not touch are left out.
    """
    if offset.ndim != 2:
        return {}
    parts = {}
    for name, idx in layer_groups(offset.shape[0]).items():
        part = np.zeros_like(offset)
        part[idx] = offset[idx]
        if np.any(part):  # a group the direction leaves alone changes nothing to measure
            parts[name] = (float(np.sum(part**2) / np.sum(offset**2)), part)
    found = {
        name: edit_shares(generator, codes, part, masks, wide_face, base, batch)
        for name, (_, part) in parts.items()
    }
    total = sum(float(e.energy.sum()) for e in found.values())
    return {
        name: GroupEdit(
            weight=parts[name][0],
            energy_share=float(e.energy.sum() / total) if total > 0 else float("nan"),
            shares=e.summary(),
        )
        for name, e in found.items()
    }


def attribute_regions(
    generator: GeneratorLike,
    codes: np.ndarray,
    direction: HealthDirection,
    masks: np.ndarray,
    n_random: int = 8,
    step_sd: float = 1.0,
    seed: int = 0,
    batch: int = 16,
    n_fallback_masks: int = 0,
    margin_px: int | None = None,
) -> Attribution:
    """Energy shares per region of a ``step_sd`` step along the health direction and along random ones.

    Also the share inside the face with a contour margin (``margin_px``, default :func:`face_margin_px`)
    for both, and, for W+ directions, the part of the edit in each layer group.
    """
    codes = np.asarray(codes, dtype=np.float64)
    margin = face_margin_px(masks.shape[-1]) if margin_px is None else int(margin_px)
    wide_face = face_with_margin(masks, margin)
    base = synthesize(generator, broadcast_ws(codes, generator.num_ws), batch)
    step = step_sd * direction.scale
    health = edit_shares(generator, codes, step * direction.vector, masks, wide_face, base, batch)
    random_means, random_wide = [], []
    for vector in random_unit_directions(direction.shape, n_random, seed):
        found = edit_shares(generator, codes, step * vector, masks, wide_face, base, batch)
        random_means.append(mean_shares(found.shares))
        random_wide.append(found.mean_face_margin)
    random_arr = np.array(random_means).reshape(n_random, len(REGIONS))
    area = np.stack([(masks == label).mean(axis=(1, 2)) for label in range(len(REGIONS))], 1).mean(axis=0)
    nan = float("nan")
    return Attribution(
        health=health.mean,
        random_mean=_region_dict(random_arr.mean(axis=0) if n_random else np.full(len(REGIONS), nan)),
        random_sd=_region_dict(random_arr.std(axis=0) if n_random else np.full(len(REGIONS), nan)),
        area=_region_dict(area),
        per_patient=health.shares,
        step_sd=step_sd,
        n_random=n_random,
        n_fallback_masks=n_fallback_masks,
        margin_px=margin,
        face_margin={
            "definition": (
                f"the face mask dilated by {margin} px (1/32 of the image side): a change of the face's "
                "shape moves its contour, and that change falls on both sides of the unedited mask's edge"
            ),
            "health": health.mean_face_margin,
            "random_mean": float(np.mean(random_wide)) if n_random else nan,
            "random_sd": float(np.std(random_wide)) if n_random else nan,
            "area": float(wide_face.mean()),
        },
        groups=group_edits(generator, codes, step * direction.vector, masks, wide_face, base, batch),
    )
