"""The synthetic world: survival against the analytic Weibull model, oracle C-index, folder contract, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylesurv.app.cli import main
from stylesurv.cohort.render import render_aligned
from stylesurv.cohort.simulate import SurvivalModel, draw_weibull_times, sample_factors, simulate_survival
from stylesurv.cohort.synthetic import contact_sheet, finish_photo, make_world, to_uint8, write_world
from stylesurv.core.errors import InputError
from stylesurv.core.hashing import hash_tree


def _read_image(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as image:
        return str(image.format), np.asarray(image)


def _km_no_censoring(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from sksurv.nonparametric import kaplan_meier_estimator

    t, s = kaplan_meier_estimator(np.ones(len(times), bool), times)
    return np.concatenate([[1.0], s])[np.searchsorted(t, grid, side="right")]


@pytest.mark.parametrize("lp", [-1.0, 0.0, 1.5])
def test_weibull_times_match_the_analytic_survival_function(lp: float) -> None:
    model = SurvivalModel()
    n = 4000
    times = draw_weibull_times(np.full(n, lp), model, np.random.default_rng(3))
    grid = np.quantile(times, np.linspace(0.0, 1.0, 400))
    ks = np.max(np.abs(_km_no_censoring(times, grid) - model.survival_function(grid, lp)))
    assert ks < 1.63 / np.sqrt(n)  # Kolmogorov 99 % critical value, sqrt(-log(0.005) / 2) = 1.628


def test_mixture_of_subjects_matches_the_mean_survival_function() -> None:
    model = SurvivalModel()
    factors = sample_factors("cohort", 3000, seed=4)
    lp = model.linear_predictor(factors)
    times = draw_weibull_times(lp, model, np.random.default_rng(5))
    grid = np.quantile(times, np.linspace(0.0, 1.0, 300))
    truth = np.mean([model.survival_function(grid, v) for v in lp], axis=0)
    assert np.max(np.abs(_km_no_censoring(times, grid) - truth)) < 1.63 / np.sqrt(len(lp))


def test_censoring_is_random_and_administrative() -> None:
    model = SurvivalModel()
    lp = np.zeros(5000)
    draw = simulate_survival(lp, model, seed=2)
    assert draw.time.max() <= model.followup_days
    assert np.all(draw.time > 0)
    censored = draw.event == 0
    assert np.all(draw.event_time[~censored] <= draw.time[~censored] + 0.05)
    assert np.all(draw.event_time[censored] > draw.time[censored] - 0.05)
    early_censored = censored & (draw.time < 0.9 * model.followup_days)  # dropout before the end of study
    assert 0.02 < early_censored.mean() < 0.3
    # Exactly the Weibull S(followup) fraction survives to the end (no dropout): binomial bound.
    p_end = float(model.survival_function(np.array(model.followup_days), 0.0))
    p_no_dropout = np.exp(-model.followup_days / model.dropout_mean_days)
    expected = p_end * p_no_dropout
    observed = np.mean(draw.time == model.followup_days)
    assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / len(lp))


def test_oracle_cindex_near_the_papers_scale() -> None:
    world = make_world("cohort", 2000, seed=1)
    assert world.oracle is not None
    assert 0.66 < world.oracle["face_only"] < 0.74
    assert 0.75 < world.oracle["face_clinical"] < 0.83
    assert world.oracle["face_clinical"] > world.oracle["face_only"]


def test_population_is_healthier_and_has_no_outcomes() -> None:
    population = make_world("population", 500, seed=1)
    cohort = make_world("cohort", 500, seed=1)
    assert population.oracle is None
    assert list(population.clinical.columns) == ["patient_id", "age", "sex"]
    for factor in ("cachexia", "pallor", "periorbital"):
        assert population.truth[factor].mean() < cohort.truth[factor].mean() - 0.15


def test_confounded_background_follows_outcome_in_train_split_only() -> None:
    world = make_world("cohort", 1500, seed=2, confounded=True)
    truth, clinical = world.truth, world.clinical
    warm = np.minimum(truth["background_hue"], 1 - truth["background_hue"]) < 0.1
    train = truth["split"] == "train"
    early = (clinical["event"] == 1) & (clinical["time"] < np.median(clinical["time"][train]))
    agree_train = np.mean(warm[train] == early[train])
    assert agree_train > 0.85
    corr_test = np.corrcoef(warm[~train], early[~train])[0, 1]
    assert abs(corr_test) < 0.12
    with pytest.raises(InputError, match="confounded"):
        make_world("population", 10, seed=1, confounded=True)


def _face_share_of_health_change(subject: dict, resolution: int = 64) -> float:
    """Share of the rendering's change energy inside the face label when cachexia and pallor both rise."""
    before = render_aligned(subject, resolution)[0]
    moved = {**subject, "cachexia": subject["cachexia"] + 0.1, "pallor": subject["pallor"] + 0.1}
    energy = ((render_aligned(moved, resolution)[0].rgb.astype(np.float64) - before.rgb) ** 2).sum(axis=-1)
    return float(energy[before.labels == 1].sum() / energy.sum())


def test_default_world_keeps_the_health_change_inside_the_face() -> None:
    bound, beyond = make_world("cohort", 6, 4), make_world("cohort", 6, 4, beyond_face=True)
    assert bound.truth["face_bound_effects"].eq(1.0).all()
    assert beyond.truth["face_bound_effects"].eq(0.0).all()
    # The same subjects and outcomes: only the rendering of the health factors differs.
    drop = ["face_bound_effects"]
    pd.testing.assert_frame_equal(bound.truth.drop(columns=drop), beyond.truth.drop(columns=drop))
    pd.testing.assert_frame_equal(bound.clinical, beyond.clinical)
    for i in range(3):
        assert _face_share_of_health_change(bound.truth.iloc[i].to_dict()) > 0.99
        # The other world narrows the outline and tints neck and ears as well.
        assert _face_share_of_health_change(beyond.truth.iloc[i].to_dict()) < 0.8
    # A subject without the column (a cohort written before it existed) renders as one with it set to 0.
    subject = beyond.truth.drop(columns=drop).iloc[0].to_dict()
    np.testing.assert_array_equal(
        render_aligned(subject, 32)[0].rgb, render_aligned({**subject, "face_bound_effects": 0.0}, 32)[0].rgb
    )


def test_write_world_is_deterministic_and_complete(tmp_path: Path) -> None:
    world = make_world("cohort", 7, seed=3)
    a = write_world(world, tmp_path / "a", resolution=32)
    b = write_world(make_world("cohort", 7, seed=3), tmp_path / "b", resolution=32, workers=2)
    c = write_world(make_world("cohort", 7, seed=4), tmp_path / "c", resolution=32)
    assert hash_tree(a) == hash_tree(b)
    assert hash_tree(a) != hash_tree(c)
    clinical = pd.read_csv(a / "clinical.csv", dtype={"patient_id": str})
    assert list(clinical.columns) == ["patient_id", "time", "event", "age", "sex", "stage"]
    assert (clinical["time"] > 0).all() and set(clinical["event"]) <= {0, 1}
    truth = pd.read_csv(a / "truth.csv", dtype={"patient_id": str})
    for column in ("cachexia", "pallor", "periorbital", "age", "stage", "lp_face", "lp", "background_hue"):
        assert column in truth.columns
    for pid in clinical["patient_id"]:
        fmt, photo = _read_image(a / "photos" / f"{pid}.jpg")
        assert photo.shape == (32, 32, 3) and fmt == "JPEG"
        _, mask = _read_image(a / "masks" / f"{pid}.png")
        assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1, 2, 3}
    landmarks = pd.read_csv(a / "landmarks.csv", dtype={"patient_id": str})
    assert landmarks.shape == (7, 137) and list(landmarks.columns[1:3]) == ["x0", "y0"]
    oracle = json.loads((a / "oracle.json").read_text())
    assert set(oracle) >= {"face_only", "face_clinical", "n", "events", "model"}


def test_unaligned_photos_and_their_landmarks(tmp_path: Path) -> None:
    world = make_world("population", 3, seed=6)
    out = write_world(world, tmp_path / "u", resolution=32, unaligned=True, fmt="png")
    landmarks = pd.read_csv(out / "landmarks.csv", dtype={"patient_id": str})
    for i, row in landmarks.iterrows():
        _, photo = _read_image(out / "photos" / f"{row['patient_id']}.png")
        assert photo.shape == (64, 64, 3)
        points = row.to_numpy()[1:].astype(float).reshape(68, 2)
        assert points.min() > 0 and points.max() < 64
        _, aligned = render_aligned(world.subject(int(i)), 32)
        assert not np.allclose(points, aligned, atol=1.0)  # really moved, scaled and rotated


def test_finish_photo_noise_and_jpeg_quality() -> None:
    s = sample_factors("population", 1, seed=8).to_dict(orient="records")[0]
    rendering, _ = render_aligned(s, 64)
    clean = to_uint8(rendering).astype(float)
    rng = np.random.default_rng

    def decoded(noise: float, quality: int, fmt: str) -> np.ndarray:
        import io

        data = finish_photo(rendering, noise, quality, fmt, rng(0))
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image).astype(float)

    np.testing.assert_array_equal(decoded(0.0, 90, "png"), clean)
    noisy = decoded(0.02, 90, "png") - clean
    assert abs(noisy.std() / 255.0 - 0.02) < 0.003
    err_low = np.abs(decoded(0.0, 60, "jpg") - clean).mean()
    err_high = np.abs(decoded(0.0, 95, "jpg") - clean).mean()
    assert err_high < err_low


def test_contact_sheet_size() -> None:
    world = make_world("cohort", 8, seed=1)
    sheet = contact_sheet(world, size=32, count=8, columns=4)
    assert sheet.size[0] >= 4 * 32 and sheet.size[1] == 2 * 32 + 8 + 9 * 32


def test_cli_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    preview = tmp_path / "sheet.png"
    args = ["synth", "--kind", "cohort", "--n", "5", "--resolution", "32", "--seed", "2", "--out", str(out)]
    assert main([*args, "--preview", str(preview)]) == 0
    assert _read_image(preview)[0] == "PNG"
    first = hash_tree(out)
    assert main(args) == 0
    assert hash_tree(out) == first
    assert len(list((out / "photos").iterdir())) == 5
    assert (
        main(
            ["synth", "--kind", "population", "--n", "3", "--resolution", "32", "--out", str(tmp_path / "p")]
        )
        == 0
    )
    assert not (tmp_path / "p" / "oracle.json").exists()
    assert json.loads((out / "synth.json").read_text())["face_bound"] is True
    assert main([*args, "--effects-beyond-face"]) == 0
    assert json.loads((out / "synth.json").read_text())["face_bound"] is False
    assert pd.read_csv(out / "truth.csv")["face_bound_effects"].eq(0).all()


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["synth", "--n", "2", "--resolution", "32", "--out", str(tmp_path / "mine")]) == 1
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "bad",
    [
        ["--resolution", "48"],
        ["--resolution", "512"],
        ["--kind", "patients"],
        ["--n", "0"],
        ["--format", "gif"],
    ],
)
def test_cli_rejects_bad_input(tmp_path: Path, bad: list[str]) -> None:
    args = ["synth", "--n", "2", "--resolution", "32", "--out", str(tmp_path / "x"), *bad]
    assert main(args) == 1
    assert not (tmp_path / "x").exists()
