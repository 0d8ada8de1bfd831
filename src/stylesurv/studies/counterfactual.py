"""Nuisance directions as the embedding sees them: re-embed photos with the background or clothing recoloured.

A ridge probe finds the one latent direction that best predicts a measured nuisance, but the embedding may
spread a background change over many latent dimensions, and on a training split where the background
tracks the outcome the probe also leans on the facial signal that tracks it there.  Counterfactual photos
avoid both: each patient's aligned photo is copied with only the pixels of one mask region changed (the
region's mean colour moved to that of another patient of the cohort, its texture kept), the copies are
embedded exactly like the originals (same networks, settings and per-patient seeds), and the principal
directions of the code changes span what the embedding does when only that region changes.  No outcome
enters them.  Removing that span from every code (`project_out`) is ``--remove-nuisance`` with the
``counterfactual`` source.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from stylesurv.core.aligned import MASKS_DIR, QC_FILE, REGIONS, mask_file, photo_file, read_mask, read_photo
from stylesurv.core.atomic import write_bytes_atomic, write_text_atomic
from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents

if TYPE_CHECKING:
    from stylesurv.invert.embed import EmbedConfig, Networks

SWAPPED_REGIONS = ("background", "clothing")  # regions recoloured by default
# Share of the code changes' squared length whose directions are removed.  The embedding spreads a
# recoloured background over many directions, so a few top directions recover little of the confounder's
# cost and 85 % of the energy recovers most of it (docs/results.md, "counterfactual energy").
DEFAULT_ENERGY = 0.85


def recolour_region(image: np.ndarray, mask: np.ndarray, label: int, target: np.ndarray) -> np.ndarray:
    """``image`` [R, R, 3] uint8 with the pixels of mask ``label`` shifted so their mean colour is ``target``
    (RGB 0-255); texture inside the region and every other pixel are kept."""
    out = image.astype(np.float64)
    region = np.asarray(mask) == label
    if region.any():
        out[region] += np.asarray(target, dtype=np.float64) - out[region].mean(axis=0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_counterfactual_photos(
    aligned_dir: str | Path,
    out_dir: str | Path,
    patient_ids: list[str],
    regions: tuple[str, ...] = SWAPPED_REGIONS,
    seed: int = 0,
) -> list[str]:
    """Write ``out_dir/<pid>.png``: each patient's aligned photo with every region of ``regions`` recoloured
    to that region's mean colour in another patient's photo (drawn with ``seed``).  Masks are copied along, so
    the copies embed with the same face-weighted loss; returns the ids written (patients with a photo and a
    mask)."""
    aligned, out = Path(aligned_dir), Path(out_dir)
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise InputError(f"unknown mask region(s) {', '.join(unknown)}; choose from {', '.join(REGIONS)}")
    photos, masks, ids = [], [], []
    for pid in patient_ids:
        photo, mask = photo_file(aligned, pid), mask_file(aligned, pid)
        if photo is None or mask is None:
            continue
        image = read_photo(photo)
        photos.append(image)
        masks.append(read_mask(mask, image.shape[0]))
        ids.append(pid)
    if len(ids) < 2:
        raise InputError(
            f"{aligned}: counterfactual photos need at least two patients with an aligned photo and a mask "
            "(masks/<patient_id>.png)"
        )
    rng = np.random.default_rng(seed)
    donors = (np.arange(len(ids)) + rng.integers(1, len(ids), size=len(ids))) % len(ids)  # never oneself
    (out / MASKS_DIR).mkdir(parents=True, exist_ok=True)
    for i, pid in enumerate(ids):
        image = photos[i]
        for region in regions:
            label = REGIONS.index(region)
            donor = photos[donors[i]][masks[donors[i]] == label]
            if len(donor):
                image = recolour_region(image, masks[i], label, donor.astype(np.float64).mean(axis=0))
        write_bytes_atomic(out / f"{pid}.png", _png(image))
        write_bytes_atomic(out / MASKS_DIR / f"{pid}.png", _png(masks[i]))
    write_text_atomic(out / QC_FILE, "patient_id,status,usable\n" + "".join(f"{pid},ok,1\n" for pid in ids))
    return ids


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def counterfactual_basis(
    original: Latents,
    swapped: Latents,
    space: str,
    patient_ids: list[str] | None = None,
    energy: float = DEFAULT_ENERGY,
    within: np.ndarray | None = None,
) -> np.ndarray:
    """Orthonormal [k, D] basis of the code changes ``swapped - original`` (codes of ``space`` flattened):
    their fewest principal directions (uncentred, so a common shift counts too) that hold ``energy`` of the
    changes' squared length.  ``patient_ids`` limits the patients used (e.g. the training split);
    ``within`` (orthonormal rows [m, D], a face-bound model's subspace) keeps only the changes' part in it,
    the part such a model sees."""
    if not 0.0 < energy <= 1.0:
        raise InputError(f"the share of the code changes to remove must be in (0, 1], got {energy}")
    known = set(original.patient_id.astype(str))
    common = [pid for pid in swapped.patient_id.astype(str) if pid in known]
    if patient_ids is not None:
        wanted = set(map(str, patient_ids))
        common = [pid for pid in common if pid in wanted]
    if len(common) < 2:
        raise InputError("need the original and counterfactual codes of at least two common patients")
    a = original.subset(np.array(common)).codes(space)
    b = swapped.subset(np.array(common)).codes(space)
    deltas = (np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)).reshape(len(common), -1)
    if within is not None:
        deltas = deltas @ within.T @ within
    _, s, vt = np.linalg.svd(deltas, full_matrices=False)
    total = float(np.sum(s**2))
    if total == 0.0:
        return vt[:0]
    keep = int(np.searchsorted(np.cumsum(s**2) / total, energy - 1e-12) + 1)
    return vt[: min(keep, len(s))]


def embed_counterfactuals(
    aligned_dir: str | Path,
    networks: Networks,
    config: EmbedConfig,
    out_dir: str | Path,
    patient_ids: list[str],
    max_patients: int = 200,
    seed: int = 0,
) -> Latents:
    """Recolour the background and clothing of (up to ``max_patients``, drawn with ``seed``, of) the patients
    and embed the copies with ``networks`` and ``config``, as the originals were embedded: same patient,
    same seed, so the codes differ from the originals only through the recoloured pixels.  Writes
    ``out_dir/aligned/`` (the copies) and ``out_dir/latents.npz`` (a resumable embedding); returns the codes.
    """
    from stylesurv.core.latents import load_latents
    from stylesurv.invert.embed import embed_folder

    ids = [str(p) for p in patient_ids]
    if len(ids) > max_patients:
        rng = np.random.default_rng(seed)
        ids = sorted(rng.choice(np.array(ids), size=max_patients, replace=False).tolist())
    folder = Path(out_dir)
    written = write_counterfactual_photos(aligned_dir, folder / "aligned", ids, seed=seed)
    out = folder / "latents.npz"
    if out.is_file():
        done = load_latents(out)
        if sorted(done.patient_id.astype(str).tolist()) == sorted(written):
            return done
    embed_folder(folder / "aligned", networks, out, config)
    return load_latents(out)
