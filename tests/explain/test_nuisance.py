import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylesurv.explain.nuisance import (
    fit_probe,
    head_pose,
    measure_photo_nuisances,
    nuisance_basis,
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
