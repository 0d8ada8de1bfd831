import numpy as np
import pytest

from stylesurv.core.errors import InputError
from stylesurv.explain.direction import health_direction, layer_groups, layer_resolution, pattern_direction
from tests.explain.toys import LinearBundle


def _pca_bundle(rng: np.random.Generator, dim: int) -> LinearBundle:
    components = np.linalg.qr(rng.standard_normal((dim, dim)))[0][:3]  # 3 orthonormal PCA axes [3, dim]
    return LinearBundle(
        rng.standard_normal(dim), rng.uniform(0.5, 2.0, dim), components, np.array([1.5, -0.7, 0.2])
    )


def test_direction_is_the_normalised_negative_gradient_of_a_pca_cox_model() -> None:
    rng = np.random.default_rng(1)
    bundle = _pca_bundle(rng, 6)
    codes = rng.standard_normal((50, 6))
    d = health_direction(bundle, codes)
    # Known answer: risk is linear, so its gradient is the finite difference along each axis.
    base = bundle.predict_codes(codes[:1])
    grad = (
        np.array([bundle.predict_codes(codes[:1] + 1e-3 * np.eye(6)[k])[0] - base[0] for k in range(6)])
        / 1e-3
    )
    np.testing.assert_allclose(d.vector, -grad / np.linalg.norm(grad), atol=1e-6)
    assert np.linalg.norm(d.vector) == pytest.approx(1.0)
    # Moving toward health lowers the model's risk, and the attribute is a decreasing function of risk.
    assert np.all(bundle.predict_codes(codes + d.offset(1.0)[None]) < bundle.predict_codes(codes))
    assert np.corrcoef(d.attribute(codes), bundle.predict_codes(codes))[0, 1] == pytest.approx(-1.0)


def test_a_single_coefficient_maps_back_to_its_axis_through_standardisation() -> None:
    sd = np.array([1.0, 4.0, 1.0])
    bundle = LinearBundle(np.zeros(3), sd, np.eye(3), np.array([0.0, 2.0, 0.0]))  # risk = 2 * x1 / 4
    d = health_direction(bundle, np.random.default_rng(0).standard_normal((20, 3)))
    np.testing.assert_allclose(d.vector, [0.0, -1.0, 0.0])


def test_attribute_is_standardised_and_offsets_are_in_cohort_sds() -> None:
    rng = np.random.default_rng(2)
    codes = rng.standard_normal((200, 4)) * [1.0, 3.0, 0.5, 2.0]
    d = health_direction(np.array([0.0, 1.0, 0.0, 0.0]), codes)
    attr = d.attribute(codes)
    assert attr.mean() == pytest.approx(0.0, abs=1e-12)
    assert attr.std() == pytest.approx(1.0)
    assert d.scale == pytest.approx(codes[:, 1].std())
    np.testing.assert_allclose(d.attribute(codes + d.offset(2.0)[None]) - attr, 2.0)


def test_layer_groups_follow_stylegans_coarse_middle_fine_split() -> None:
    # 1024 px StyleGAN: 18 codes; coarse 0-3 (4-8 px), middle 4-7 (16-32 px), fine 8-17 (Karras et al. 2019).
    groups = layer_groups(18)
    assert [list(groups[g][[0, -1]]) for g in ("coarse", "middle", "fine")] == [[0, 3], [4, 7], [8, 17]]
    assert layer_resolution(17) == 1024
    assert set(layer_groups(8)) == {"coarse", "middle"}  # 32 px has no fine layers


def test_wplus_group_weights_and_attributes() -> None:
    rng = np.random.default_rng(3)
    gradient = np.zeros((10, 5))
    gradient[9, 0] = -1.0  # only a fine layer matters
    codes = rng.standard_normal((40, 10, 5))
    d = health_direction(gradient, codes)
    assert d.group_weights() == {"coarse": 0.0, "middle": 0.0, "fine": pytest.approx(1.0)}
    groups = d.group_attributes(codes)
    assert set(groups) == {"fine"}
    np.testing.assert_allclose(groups["fine"], d.attribute(codes), atol=1e-9)


def test_zero_gradient_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="zero"):
        health_direction(np.zeros(3), np.random.default_rng(0).standard_normal((5, 3)))


def test_pattern_drops_the_weight_that_only_cancels_shared_noise() -> None:
    """Haufe et al. (2014), their two-channel example: x1 = signal + noise, x2 = noise.  The best linear
    risk is x1 - x2 (= the signal), so the weights are (1, -1), but only x1 changes with the risk: the
    pattern Cov(x, risk) is (var(signal), 0), i.e. the health direction is -e1."""
    rng = np.random.default_rng(0)
    signal, noise = rng.standard_normal(5000), rng.standard_normal(5000)
    codes = np.stack([signal + noise, noise], axis=1)
    gradient = np.array([1.0, -1.0])
    assert np.allclose(health_direction(gradient, codes).vector, [-(0.5**0.5), 0.5**0.5])
    pattern = pattern_direction(gradient, codes)
    np.testing.assert_allclose(pattern.vector, [-1.0, 0.0], atol=0.03)
    # Its attribute is standardised over the cohort like d's, and a W+-shaped gradient keeps its shape.
    assert abs(pattern.attribute(codes).mean()) < 1e-9 and pattern.attribute(codes).std() == pytest.approx(
        1.0
    )
    plus = pattern_direction(np.stack([gradient, gradient]), np.stack([codes, codes], axis=1))
    assert plus.shape == (2, 2)


def test_pattern_is_the_covariance_times_the_gradient() -> None:
    rng = np.random.default_rng(1)
    codes = rng.standard_normal((400, 3)) @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]])
    gradient = np.array([0.3, -1.0, 2.0])
    expected = -np.cov(codes, rowvar=False) @ gradient
    np.testing.assert_allclose(pattern_direction(gradient, codes).vector, expected / np.linalg.norm(expected))
    with pytest.raises(InputError, match="shape"):
        pattern_direction(gradient, codes[:, :2])
