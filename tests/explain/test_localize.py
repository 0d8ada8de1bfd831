import numpy as np
import pytest

from stylesurv.core.errors import InputError
from stylesurv.explain.attribution import edit_shares, face_with_margin
from stylesurv.explain.direction import health_direction
from stylesurv.explain.localize import localize
from stylesurv.gan.face_subspace import FaceSubspace, downsample, face_subspace
from tests.explain.toys import region_generator, region_mask

FACE = (0, 1)  # the code coordinate that paints only the face of region_generator
SHAPE = (4, 6)


def _flat_index(coordinate: tuple[int, int]) -> int:
    return int(np.ravel_multi_index(coordinate, SHAPE))


def _subspace(threshold: float = 0.8) -> tuple[FaceSubspace, np.ndarray]:
    gen = region_generator(*SHAPE)
    codes = np.random.default_rng(0).standard_normal((80, *SHAPE))
    masks = np.stack([region_mask(gen.img_resolution)] * 6)
    return face_subspace(gen, codes, masks, np.arange(6), n_components=24, threshold=threshold), codes


def test_the_face_subspace_is_the_coordinate_that_paints_only_the_face() -> None:
    subspace, _ = _subspace()
    assert subspace.dim == 1 and subspace.n_components == 24 and subspace.n_patients == 6
    assert subspace.shares[0] == pytest.approx(1.0, abs=1e-6)
    # Every other direction paints pixels everywhere: far below the threshold.
    assert subspace.shares[1] < 0.6
    assert abs(subspace.basis[0, _flat_index(FACE)]) == pytest.approx(1.0, abs=1e-3)
    assert np.all(np.diff(subspace.shares) <= 1e-12)  # sorted, most face-bound first
    assert subspace.variance_share == pytest.approx(1.0)  # all 24 directions of a rank-24 cohort


def test_a_lower_threshold_admits_more_directions_and_none_outside_zero_one() -> None:
    strict, _ = _subspace(0.8)
    loose, _ = _subspace(0.3)
    assert loose.dim > strict.dim
    with pytest.raises(InputError, match="between 0 and 1"):
        _subspace(1.0)


def test_restrict_and_remove_split_each_code_around_the_mean() -> None:
    subspace, codes = _subspace()
    inside, outside = subspace.restrict(codes), subspace.remove(codes)
    centre = subspace.center.reshape(SHAPE)
    np.testing.assert_allclose(inside + outside, codes + centre, atol=1e-10)
    np.testing.assert_allclose(subspace.restrict(inside), inside, atol=1e-10)  # a projection
    # Inside the face subspace only the face coordinate varies over the cohort.
    spread = inside.reshape(len(codes), -1).std(axis=0)
    assert spread[_flat_index(FACE)] > 0.5 and np.delete(spread, _flat_index(FACE)).max() < 1e-3


def test_the_face_local_direction_keeps_the_face_part_and_its_edit_stays_in_the_face() -> None:
    gen = region_generator(*SHAPE)
    subspace, codes = _subspace()
    gradient = np.zeros(SHAPE)
    gradient[0, :3] = [-1.0, -1.0, -1.0]  # background, face and clothing alike (risk falls along each)
    d = health_direction(gradient, codes)
    local, cosine = localize(subspace, d, codes)
    assert local is not None and cosine == pytest.approx(1 / np.sqrt(3), abs=0.02)
    assert local.vector[FACE] == pytest.approx(1.0, abs=1e-3)  # same sign as d: toward lower risk
    masks = np.stack([region_mask(gen.img_resolution)] * 10)
    wide = face_with_margin(masks, 0)
    shares_d = edit_shares(gen, codes[:10], d.offset(1.0), masks, wide).mean["face"]
    shares_local = edit_shares(gen, codes[:10], local.offset(1.0), masks, wide).mean["face"]
    assert shares_local > 0.99 and shares_d < 0.6


def test_a_direction_outside_the_face_subspace_has_no_face_local_part() -> None:
    subspace, codes = _subspace()
    gradient = np.zeros(SHAPE)
    gradient[0, 0] = 1.0  # background only
    local, cosine = localize(subspace, health_direction(gradient, codes), codes)
    assert local is None and cosine == 0.0


def test_downsample_averages_blocks() -> None:
    images = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    np.testing.assert_allclose(downsample(images, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    assert downsample(images, 4) is images


def test_coarser_masks_find_the_same_face_subspace() -> None:
    gen = region_generator(*SHAPE, resolution=16)
    codes = np.random.default_rng(0).standard_normal((80, *SHAPE))
    coarse = np.stack([region_mask(16)[::2, ::2]] * 6)  # 8 px masks for 16 px images
    subspace = face_subspace(gen, codes, coarse, np.arange(6), n_components=24)
    assert subspace.dim == 1 and abs(subspace.basis[0, _flat_index(FACE)]) == pytest.approx(1.0, abs=1e-3)


def test_saved_subspace_loads_back_and_cuts_at_any_threshold(tmp_path) -> None:
    from stylesurv.gan.face_subspace import load_face_subspace, save_face_subspace

    subspace, _ = _subspace(0.8)
    save_face_subspace(tmp_path / "face_subspace.npz", subspace)
    loaded = load_face_subspace(tmp_path / "face_subspace.npz")
    for name in ("center", "basis", "shares", "vectors"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(subspace, name), err_msg=name)
    assert loaded.to_json() == subspace.to_json()
    # Cutting the saved analysis at another threshold equals computing it there.
    loose = load_face_subspace(tmp_path / "face_subspace.npz", 0.3)
    direct, _ = _subspace(0.3)
    assert loose.dim == direct.dim > 1
    np.testing.assert_allclose(loose.basis.T @ loose.basis, direct.basis.T @ direct.basis, atol=1e-6)
    with pytest.raises(InputError, match="not found"):
        load_face_subspace(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(InputError, match="not a face subspace file"):
        load_face_subspace(tmp_path / "bad.npz")
