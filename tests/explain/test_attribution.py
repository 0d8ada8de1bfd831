import numpy as np
import pytest
from PIL import Image

from stylesurv.explain.attribution import (
    REGIONS,
    attribute_regions,
    change_energy,
    load_masks,
    patient_file,
    region_shares,
)
from stylesurv.explain.direction import health_direction
from tests.explain.toys import region_generator, region_mask


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
