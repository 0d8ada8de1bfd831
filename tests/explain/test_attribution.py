import numpy as np
import pytest
import torch
from PIL import Image

from stylesurv.core.aligned import REGIONS, load_masks, patient_file
from stylesurv.explain.attribution import (
    attribute_regions,
    change_energy,
    face_margin_px,
    face_with_margin,
    region_shares,
)
from stylesurv.explain.direction import health_direction
from tests.explain.toys import LinearGenerator, region_generator, region_mask


def test_shares_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    energy = rng.random((4, 8, 8))
    masks = rng.integers(0, 4, (4, 8, 8))
    shares = region_shares(energy, masks)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert shares[0, 1] == pytest.approx(energy[0][masks[0] == 1].sum() / energy[0].sum())


@pytest.mark.parametrize("label", [0, 1, 2])
def test_a_direction_that_changes_one_region_puts_its_energy_there(label: int) -> None:
    gen = region_generator()
    codes = np.random.default_rng(0).standard_normal((5, gen.num_ws, gen.w_dim))
    gradient = np.zeros((gen.num_ws, gen.w_dim))
    gradient[0, label] = -1.0  # the toy generator maps this coordinate to region `label` only
    d = health_direction(gradient, codes)
    masks = np.repeat(region_mask(8)[None], 5, axis=0)
    result = attribute_regions(gen, codes, d, masks, n_random=4, seed=0)
    assert result.health[REGIONS[label]] == pytest.approx(1.0)
    assert sum(result.random_mean.values()) == pytest.approx(1.0)
    assert result.random_mean[REGIONS[label]] < 0.9  # random directions spread their energy
    assert sum(result.area.values()) == pytest.approx(1.0)


def test_energy_is_zero_for_a_zero_step_and_quadratic_in_step() -> None:
    gen = region_generator()
    codes = np.random.default_rng(0).standard_normal((2, gen.num_ws, gen.w_dim))
    offset = np.random.default_rng(1).standard_normal((gen.num_ws, gen.w_dim))
    assert change_energy(gen, codes, 0 * offset).max() == 0.0
    e1, e2 = change_energy(gen, codes, offset), change_energy(gen, codes, 2 * offset)
    np.testing.assert_allclose(e2, 4 * e1, rtol=1e-4)  # linear generator: energy scales with step^2


def test_masks_fall_back_to_the_majority_mask(tmp_path) -> None:
    (tmp_path / "masks").mkdir()
    mask = region_mask(16)
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "b.png")
    masks, fallback = load_masks(tmp_path, ["a", "b", "../c"], resolution=8)
    assert fallback == 1 and masks.shape == (3, 8, 8)
    np.testing.assert_array_equal(masks[2], masks[0])
    assert patient_file(tmp_path, "../c") is None and patient_file(tmp_path, "a/b") is None


def test_patients_whose_image_does_not_change_are_left_out_of_the_mean() -> None:
    from stylesurv.explain.attribution import mean_shares

    energy = np.zeros((2, 4, 4))
    energy[1, 0, 0] = 1.0
    masks = np.zeros((2, 4, 4), dtype=np.uint8)
    shares = region_shares(energy, masks)
    assert np.isnan(shares[0]).all()
    np.testing.assert_allclose(mean_shares(shares), [1.0, 0.0, 0.0, 0.0])
    assert np.isnan(mean_shares(shares[:1])).all()


def test_face_margin_grows_the_face_by_whole_pixels_within_each_image() -> None:
    masks = np.zeros((2, 7, 7), dtype=np.uint8)
    masks[0, 3, 3] = 1  # one face pixel in the first image, none in the second
    np.testing.assert_array_equal(face_with_margin(masks, 0), masks == 1)
    grown = face_with_margin(masks, 1)
    assert grown[0].sum() == 5 and grown[0, 2, 3] and grown[0, 3, 4] and not grown[0, 2, 2]  # 4-connected
    assert face_with_margin(masks, 2)[0].sum() == 13  # a diamond of radius 2
    assert not grown[1].any()  # never dilated across patients
    # 1/32 of the side: 2 px at 64 px (the shipped generator), 8 px at 256 px, at least 1 px.
    assert (face_margin_px(64), face_margin_px(256), face_margin_px(16)) == (2, 8, 1)


def _layer_generator(
    rows: dict[tuple[int, int], np.ndarray], num_ws: int = 10, w_dim: int = 3
) -> LinearGenerator:
    """A linear generator in which code coordinate (layer, dim) paints the given [R, R] pattern in every
    colour channel, and every other coordinate does nothing."""
    resolution = next(iter(rows.values())).shape[0]
    weight = torch.zeros(num_ws * w_dim, 3, resolution, resolution)
    for (layer, dim), pattern in rows.items():
        weight[layer * w_dim + dim] = torch.from_numpy(pattern.astype(np.float32))[None]
    return LinearGenerator(weight.reshape(num_ws * w_dim, -1), num_ws, w_dim, resolution)


def test_a_change_just_outside_the_face_counts_only_with_the_contour_margin() -> None:
    mask = region_mask(8)
    face = mask == 1
    ring = face_with_margin(mask[None], 1)[0] & ~face  # the pixels one step outside the face
    gen = _layer_generator({(0, 0): ring.astype(float)})
    codes = np.random.default_rng(0).standard_normal((3, gen.num_ws, gen.w_dim))
    gradient = np.zeros((gen.num_ws, gen.w_dim))
    gradient[0, 0] = -1.0
    result = attribute_regions(
        gen, codes, health_direction(gradient, codes), np.stack([mask] * 3), n_random=2
    )
    assert result.health["face"] == pytest.approx(0.0)
    assert result.face_margin is not None and result.margin_px == 1  # 8 px image: the 1 px floor
    assert result.face_margin["health"] == pytest.approx(1.0)
    assert result.face_margin["area"] == pytest.approx((face | ring).mean())


def test_each_layer_groups_part_of_the_edit_is_measured_on_its_own() -> None:
    mask = region_mask(8)
    # layer 0 (4 px, coarse) paints the face with amplitude 1, layer 8 (64 px, fine) the background with
    # amplitude 2; the direction moves both coordinates equally, so each group holds half of |d|^2.
    gen = _layer_generator({(0, 1): (mask == 1).astype(float), (8, 0): 2.0 * (mask == 0)})
    codes = np.random.default_rng(0).standard_normal((4, gen.num_ws, gen.w_dim))
    gradient = np.zeros((gen.num_ws, gen.w_dim))
    gradient[0, 1] = gradient[8, 0] = -1.0
    result = attribute_regions(
        gen, codes, health_direction(gradient, codes), np.stack([mask] * 4), n_random=0
    )
    groups = result.groups
    assert groups is not None and set(groups) == {"coarse", "fine"}  # the middle layers are untouched
    assert groups["coarse"].weight == pytest.approx(0.5) and groups["fine"].weight == pytest.approx(0.5)
    assert groups["coarse"].shares.health["face"] == pytest.approx(1.0)
    assert groups["fine"].shares.health["background"] == pytest.approx(1.0)
    # Energy per pixel is 3 channels x amplitude^2: the face has 1 x its area, the background 4 x its area.
    face_energy, background_energy = (mask == 1).sum(), 4.0 * (mask == 0).sum()
    expected = face_energy / (face_energy + background_energy)
    assert groups["coarse"].energy_share == pytest.approx(expected, rel=1e-4)
    assert result.health["face"] == pytest.approx(expected, rel=1e-3)  # the whole edit is the sum
