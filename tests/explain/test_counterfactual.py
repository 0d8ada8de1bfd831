"""Counterfactual nuisance directions: recolouring only the chosen region, and the span of code changes."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.studies.counterfactual import (
    counterfactual_basis,
    recolour_region,
    write_counterfactual_photos,
)


def _photo_and_mask(seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(60, 190, size=(size, size, 3)).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)  # background around a face square, clothing at the bottom
    mask[4:12, 4:12] = 1
    mask[13:, :] = 2
    return image, mask


def test_recolour_moves_the_region_mean_and_keeps_texture_and_other_pixels() -> None:
    image, mask = _photo_and_mask(0)
    target = np.array([185.0, 70.0, 110.0])  # far from the mean, yet no pixel needs clipping
    out = recolour_region(image, mask, 0, target)
    region = mask == 0
    np.testing.assert_array_equal(out[~region], image[~region])  # face and clothing untouched
    np.testing.assert_allclose(out[region].mean(axis=0), target, atol=0.5)  # rounding only
    texture_in = image[region].astype(float) - image[region].mean(axis=0)
    texture_out = out[region].astype(float) - out[region].mean(axis=0)
    unclipped = (out[region] > 0).all(axis=1) & (out[region] < 255).all(axis=1)
    np.testing.assert_allclose(texture_out[unclipped], texture_in[unclipped], atol=1.5)


def test_counterfactual_photos_change_only_background_and_clothing(tmp_path: Path) -> None:
    aligned = tmp_path / "aligned"
    (aligned / "masks").mkdir(parents=True)
    for i in range(3):
        image, mask = _photo_and_mask(i)
        image[mask == 0] = (30 * i, 100, 200 - 50 * i)  # each patient's own flat background colour
        Image.fromarray(image).save(aligned / f"p{i}.png")
        Image.fromarray(mask).save(aligned / "masks" / f"p{i}.png")
    out = tmp_path / "cf"
    ids = write_counterfactual_photos(aligned, out, ["p0", "p1", "p2", "missing"], seed=0)
    assert ids == ["p0", "p1", "p2"]  # a patient without a photo is skipped
    assert pd.read_csv(out / "qc.csv")["status"].tolist() == ["ok"] * 3
    backgrounds = {tuple(c) for c in ((30 * i, 100, 200 - 50 * i) for i in range(3))}
    for i in range(3):
        original = np.asarray(Image.open(aligned / f"p{i}.png"))
        copy = np.asarray(Image.open(out / f"p{i}.png"))
        mask = np.asarray(Image.open(out / "masks" / f"p{i}.png"))
        np.testing.assert_array_equal(copy[mask == 1], original[mask == 1])
        new = tuple(int(v) for v in copy[mask == 0][0])
        assert new in backgrounds and new != (30 * i, 100, 200 - 50 * i)  # another patient's background
    with pytest.raises(InputError, match="at least two patients"):
        write_counterfactual_photos(aligned, tmp_path / "one", ["p0"])
    with pytest.raises(InputError, match="unknown mask region"):
        write_counterfactual_photos(aligned, tmp_path / "bad", ids, regions=("sky",))


def test_basis_spans_the_code_changes() -> None:
    rng = np.random.default_rng(0)
    n, dim = 40, 12
    codes = rng.standard_normal((n, dim))
    moved = codes.copy()
    moved[:, 3] += rng.standard_normal(n) * 2.0  # recolouring moves axes 3 and 7 only (and a trace elsewhere)
    moved[:, 7] += 1.0 + rng.standard_normal(n)
    moved += 1e-4 * rng.standard_normal((n, dim))
    ids = np.array([f"p{i}" for i in range(n)])
    original, swapped = Latents(patient_id=ids, w=codes), Latents(patient_id=ids[::-1], w=moved[::-1])
    basis = counterfactual_basis(original, swapped, "w", energy=0.999)
    assert basis.shape == (2, dim)
    assert np.linalg.norm(basis[:, [3, 7]]) ** 2 == pytest.approx(2.0, abs=1e-6)  # span{e3, e7}
    assert counterfactual_basis(original, swapped, "w", energy=0.3).shape[0] == 1
    assert counterfactual_basis(original, swapped, "w", ids[:10].tolist(), energy=0.999).shape[0] == 2
    # Within a subspace holding axis 7 and a mix of axes 3 and 5, only those parts of the changes count.
    within = np.zeros((2, dim))
    within[0, 7] = 1.0
    within[1, [3, 5]] = np.sqrt(0.5)
    inside = counterfactual_basis(original, swapped, "w", energy=0.999, within=within)
    assert inside.shape == (2, dim)
    np.testing.assert_allclose(inside @ within.T @ within, inside, atol=1e-9)  # it lies in the subspace
    with pytest.raises(InputError, match="in \\(0, 1\\]"):
        counterfactual_basis(original, swapped, "w", energy=0.0)
    with pytest.raises(InputError, match="at least two common patients"):
        counterfactual_basis(original, swapped, "w", ["p0"])
