import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylesurv.explain.direction import health_direction
from stylesurv.explain.nuisance import (
    Probe,
    fit_probe,
    fit_probes,
    head_pose,
    measure_photo_nuisances,
    nuisance_basis,
    orthogonal_to_nuisance,
    probe_attributes,
    project_out,
)
from tests.explain.toys import region_mask


def test_probe_finds_a_planted_nuisance_direction_and_its_cosine_with_d() -> None:
    rng = np.random.default_rng(0)
    n, dim = 300, 12
    codes = rng.standard_normal((n, dim))
    nuisance = rng.standard_normal(dim)
    nuisance /= np.linalg.norm(nuisance)
    health = np.zeros(dim)
    health[0] = 1.0
    table = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)], "background": codes @ nuisance})
    probes = probe_attributes(codes, table, table["patient_id"].tolist(), health)
    assert len(probes) == 1
    assert probes[0].r2_cv > 0.99
    assert probes[0].cosine == pytest.approx(nuisance[0], abs=0.01)  # cos(d, n) = n . e0


def test_probe_of_pure_noise_has_no_cv_r2() -> None:
    rng = np.random.default_rng(1)
    _, r2 = fit_probe(rng.standard_normal((200, 10)), rng.standard_normal(200))
    assert r2 < 0.05


def test_joint_probes_equal_one_ridgecv_per_attribute() -> None:
    """Reference: scikit-learn's RidgeCV and cross_val_score run separately for each attribute."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_score

    from stylesurv.explain.nuisance import RIDGE_ALPHAS

    rng = np.random.default_rng(4)
    codes = rng.standard_normal((120, 30))
    targets = np.stack(
        [codes[:, 0], codes[:, 1:4].sum(1) + rng.standard_normal(120), rng.standard_normal(120)], 1
    )
    weights, r2 = fit_probes(codes, targets, seed=3)
    for t in range(targets.shape[1]):
        cv = KFold(n_splits=5, shuffle=True, random_state=3)
        expected_r2 = np.mean(
            cross_val_score(RidgeCV(alphas=RIDGE_ALPHAS), codes, targets[:, t], cv=cv, scoring="r2")
        )
        coef = RidgeCV(alphas=RIDGE_ALPHAS).fit(codes, targets[:, t]).coef_
        assert r2[t] == pytest.approx(expected_r2, abs=1e-9)
        np.testing.assert_allclose(weights[t], coef / np.linalg.norm(coef), atol=1e-9)


def test_probes_of_attributes_with_missing_values_use_their_own_patients() -> None:
    rng = np.random.default_rng(5)
    n = 200
    codes = rng.standard_normal((n, 6))
    partial = codes[:, 2].copy()
    partial[::3] = np.nan  # a measurement a third of the patients lack
    table = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)], "full": codes[:, 1], "partial": partial})
    probes = {p.name: p for p in probe_attributes(codes, table, table["patient_id"].tolist(), np.eye(6)[0])}
    assert probes["full"].n == n and probes["partial"].n == n - len(range(0, n, 3))
    assert probes["partial"].r2_cv > 0.99 and abs(probes["partial"].direction[2]) > 0.99


def test_projection_removes_the_nuisance_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(2)
    codes = rng.standard_normal((300, 8))
    targets = pd.DataFrame({"bg": codes[:, 3] + 0.5 * codes[:, 4]})
    basis = nuisance_basis(codes, targets, rounds=2)
    projected = project_out(codes, basis)
    assert fit_probe(projected, targets["bg"].to_numpy())[1] < 0.05
    np.testing.assert_allclose(projected[:, 0], codes[:, 0], atol=0.05)  # orthogonal coordinates stay


def test_head_pose_of_a_rotated_face() -> None:
    lm = np.zeros((68, 2))
    lm[36:42] = [10.0, 20.0]
    lm[42:48] = [30.0, 20.0]
    lm[30] = [25.0, 30.0]  # nose 5 px right of the eye midpoint, eye distance 20
    roll, yaw = head_pose(lm)
    assert roll == pytest.approx(0.0) and yaw == pytest.approx(0.25)
    angle = np.radians(10.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    roll, yaw = head_pose(lm @ rot.T)
    assert roll == pytest.approx(10.0) and yaw == pytest.approx(0.25)  # yaw is measured in the eye-line frame


def test_background_and_clothing_colour_from_photo_and_mask(tmp_path) -> None:
    mask = region_mask(8)
    photo = np.zeros((8, 8, 3), dtype=np.uint8)
    photo[mask == 0] = [255, 0, 0]
    photo[mask == 2] = [0, 0, 255]
    (tmp_path / "masks").mkdir()
    Image.fromarray(photo).save(tmp_path / "p1.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "p1.png")
    lm = np.zeros((68, 2))
    lm[42:48, 0] = 10.0
    pd.DataFrame(
        [["p1", *lm.reshape(-1)]], columns=["patient_id"] + [f"{a}{i}" for i in range(68) for a in "xy"]
    ).to_csv(tmp_path / "landmarks.csv", index=False)
    table = measure_photo_nuisances(tmp_path, ["p1", "p2"]).set_index("patient_id")
    assert table.loc["p1", "background_brightness"] == pytest.approx(1 / 3)
    assert table.loc["p1", "background_red_green"] == pytest.approx(1.0)
    assert table.loc["p1", "clothing_yellow_blue"] == pytest.approx(-1.0)
    assert table.loc["p1", "head_roll_deg"] == pytest.approx(0.0)
    assert np.isnan(table.loc["p2", "background_brightness"])


def test_orthogonal_direction_drops_exactly_the_part_of_d_in_the_nuisance_span() -> None:
    codes = np.random.default_rng(0).standard_normal((50, 4))
    d = health_direction(-np.array([1.0, 1.0, 0.0, 0.0]), codes)  # d = (e0 + e1) / sqrt(2)
    background = Probe("background_value", 0.9, 0.0, np.array([1.0, 0.0, 0.0, 0.0]), 50)
    unreadable = Probe("clothing_value", 0.01, 0.0, np.array([0.0, 1.0, 0.0, 0.0]), 50)  # R^2 < 0.05
    found = orthogonal_to_nuisance(d, [background, unreadable], codes)
    assert found.n_directions == 1 and found.removed_share == pytest.approx(0.5)
    assert found.summary().cosine_with_d == pytest.approx(np.sqrt(0.5))
    assert found.direction is not None
    np.testing.assert_allclose(found.direction.vector, [0.0, 1.0, 0.0, 0.0], atol=1e-12)
    # standardised over the cohort like d itself: the attribute has mean 0 and SD 1
    attribute = found.direction.attribute(codes)
    assert attribute.mean() == pytest.approx(0.0, abs=1e-12) and attribute.std() == pytest.approx(1.0)


def test_orthogonal_direction_is_d_without_probes_and_none_when_d_is_all_nuisance() -> None:
    codes = np.random.default_rng(1).standard_normal((40, 2, 3))
    gradient = np.zeros((2, 3))
    gradient[1, 2] = -1.0
    d = health_direction(gradient, codes)
    same = orthogonal_to_nuisance(d, [], codes)
    assert same.removed_share == pytest.approx(0.0) and same.direction is not None
    np.testing.assert_allclose(same.direction.vector, d.vector)
    assert same.direction.scale == pytest.approx(d.scale)
    along = Probe("background_value", 0.5, 1.0, d.vector.reshape(-1), 40)
    gone = orthogonal_to_nuisance(d, [along], codes)
    assert gone.direction is None and gone.removed_share == pytest.approx(1.0)
