"""`stylesurv predict`: new photos scored with a finished run exactly as the run scored its cohort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from PIL import Image

from stylesurv.app.predict import (
    Predictions,
    Predictor,
    choose_model,
    load_predictor,
    median_survival,
    photo_names,
    predict_photos,
    risk_thresholds,
)
from stylesurv.app.predict_commands import register
from stylesurv.core.errors import InputError, StylesurvError
from stylesurv.core.latents import Latents, load_latents
from stylesurv.explain.direction import codes_in_space, health_direction
from stylesurv.gan.render import to_uint8
from stylesurv.survival.bundle import OOF_RISK, load_bundle
from tests.pipeline.predict_run import TinyRun, build_run

COHORT_IDS = ["S00", "S01", "S02"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return build_run(tmp_path_factory.mktemp("predict"))


@pytest.fixture(scope="module")
def predictor(tiny_run: TinyRun) -> Predictor:
    return load_predictor(tiny_run.root)


@pytest.fixture(scope="module")
def predictions(tiny_run: TinyRun, predictor: Predictor) -> Predictions:
    return predict_photos(predictor, [tiny_run.photo(pid) for pid in COHORT_IDS], tiny_run.landmarks)


def invoke(args: list[str]) -> tuple[int, str]:
    """Run the predict command as `stylesurv.cli.main` does: exit code and the error message, if any."""
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    try:
        app(args=args, standalone_mode=False)
    except StylesurvError as exc:
        return 1, str(exc)
    return 0, ""


def as_latents(predictions: Predictions) -> Latents:
    return Latents(
        patient_id=np.array([p.name for p in predictions.photos]),
        wplus=np.stack([p.code for p in predictions.photos]),
    )


def test_defaults_to_coxnet_and_uses_the_run_settings(predictor: Predictor) -> None:
    assert predictor.model_name == "coxnet" and predictor.direction_model == "coxnet"
    assert predictor.align_config.resolution == 32
    config = predictor.embed_config
    assert (config.project.space, config.project.steps, config.batch, config.seed) == ("wplus", 8, 16, 7)


def test_cohort_photo_gets_its_run_code_and_score(predictor: Predictor, predictions: Predictions) -> None:
    run_latents = load_latents(predictor.run.latents).subset(COHORT_IDS)
    codes = np.stack([p.code for p in predictions.photos])
    # same seed (from the pixels), same settings, same networks: only batch-size rounding may differ
    np.testing.assert_allclose(codes, run_latents.wplus, atol=1e-3)
    run_risk = predictor.bundle.predict(run_latents)
    np.testing.assert_allclose([p.risk for p in predictions.photos], run_risk, atol=1e-3)
    assert all(p.status == "ok" and p.scored for p in predictions.photos)


def test_scores_are_the_bundle_on_the_embedded_code(predictor: Predictor, predictions: Predictions) -> None:
    latents = as_latents(predictions)
    bundle = load_bundle(predictor.run.bundles["coxnet"])
    np.testing.assert_allclose([p.risk for p in predictions.photos], bundle.predict(latents), rtol=1e-12)
    survival = bundle.predict_survival_function(latents)
    for i, p in enumerate(predictions.photos):
        np.testing.assert_allclose(p.survival.to_numpy(), survival.iloc[i].to_numpy(), rtol=1e-12)
        curve = survival.iloc[i]
        assert p.median_survival == curve.index[np.argmax(curve.to_numpy() <= 0.5)]
        assert curve[curve.index < p.median_survival].min() > 0.5
    # the health attribute is the explain stage's: projection on the direction, standardised over the cohort
    cohort = load_latents(predictor.run.latents)
    direction = health_direction(bundle, codes_in_space(cohort, (8, 32)))
    np.testing.assert_allclose(
        [p.health_attribute for p in predictions.photos], direction.attribute(latents.wplus), rtol=1e-9
    )


def test_risk_groups_follow_the_out_of_fold_thresholds(
    predictor: Predictor, predictions: Predictions
) -> None:
    oof = pd.read_csv(predictor.run.bundles["coxnet"] / OOF_RISK)
    risk = oof["risk"].to_numpy()
    assert predictor.thresholds.median == pytest.approx(np.median(risk))
    assert predictor.thresholds.tertiles == pytest.approx(tuple(np.percentile(risk, [100 / 3, 200 / 3])))
    low, high = predictor.thresholds.tertiles
    for p in predictions.photos:
        assert p.group_median == ("high" if p.risk >= np.median(risk) else "low")
        assert p.group_tertile == ("low" if p.risk < low else "intermediate" if p.risk < high else "high")


def test_thresholds_average_repeats_and_ties_go_up(tmp_path: Path) -> None:
    # patients 1..9 with two CV repeats whose mean risk is the patient number
    ids = [f"p{i}" for i in range(1, 10)]
    frame = pd.DataFrame(
        {
            "patient_id": ids * 2,
            "repeat": [0] * 9 + [1] * 9,
            "risk": [i - 1.0 for i in range(1, 10)] + [i + 1.0 for i in range(1, 10)],
        }
    )
    frame.to_csv(tmp_path / OOF_RISK, index=False)
    thresholds = risk_thresholds(tmp_path / OOF_RISK)
    # numpy's linear quantile of 1..9: position 8/3 -> 1 + 8/3 and 16/3 -> 1 + 16/3
    assert thresholds.median == 5.0 and thresholds.n_patients == 9
    assert thresholds.tertiles == pytest.approx((11 / 3, 19 / 3))
    assert [thresholds.median_group(r) for r in (4.99, 5.0)] == ["low", "high"]
    groups = [thresholds.tertile_group(r) for r in (3.0, 11 / 3, 6.0, 19 / 3, 9.0)]
    assert groups == ["low", "intermediate", "intermediate", "high", "high"]


def test_edit_strip_middle_is_the_reconstruction(predictions: Predictions) -> None:
    assert predictions.alphas.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    for p in predictions.photos:
        assert p.edits.shape == (5, 32, 32, 3)
        middle = p.edits[2].astype(int)
        assert np.abs(middle - p.reconstruction.astype(int)).max() <= 1  # uint8 rounding only
        assert np.abs(p.edits[0].astype(int) - middle).mean() > 0.5  # the ends are edited


def test_reconstruction_is_the_generator_image_of_the_code(
    predictor: Predictor, predictions: Predictions
) -> None:
    import torch

    p = predictions.photos[0]
    with torch.no_grad():
        image = predictor.generator.synthesis(torch.from_numpy(p.code[None]).float(), noise_mode="const")
    assert np.abs(to_uint8(image)[0].astype(int) - p.reconstruction.astype(int)).max() <= 1


def test_cli_reports_failures_after_scoring_the_others(tiny_run: TinyRun, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (160, 120), (120, 140, 160)).save(blank)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    good = tiny_run.photo("S03")
    out = tmp_path / "out"
    args = ["predict", str(blank), str(good), str(broken), "--run", str(tiny_run.root)]
    code, message = invoke([*args, "--landmarks", str(tiny_run.landmarks), "--out", str(out)])
    assert code == 1
    assert f"{blank}: no_face" in message and f"{broken}: unreadable" in message and "2 of 3" in message
    table = pd.read_csv(out / "predictions.csv")
    assert table["status"].tolist() == ["no_face", "ok", "unreadable"]
    assert table["risk"].isna().tolist() == [True, False, True]
    for folder in ("aligned", "reconstruction", "edits", "survival"):
        assert sorted(p.name for p in (out / folder).iterdir()) == ["S03.png"]
    assert load_latents(out / "latents.npz").patient_id.tolist() == ["S03"]
    with Image.open(out / "edits" / "S03.png") as strip:
        assert strip.size == (5 * 32 + 6 * 2, 32 + 2 * 2)  # image_grid: 2 px padding around each tile


def test_model_option(tiny_run: TinyRun) -> None:
    predictor = load_predictor(tiny_run.root, "coxph")
    result = predict_photos(predictor, [tiny_run.photo("S00")], tiny_run.landmarks)
    bundle = load_bundle(tiny_run.root / "fit" / "coxph")
    assert result.model == "coxph" and result.direction_model == "coxph"
    np.testing.assert_allclose(result.photos[0].risk, bundle.predict(as_latents(result))[0], rtol=1e-12)
    code, message = invoke(
        ["predict", str(tiny_run.photo("S00")), "--run", str(tiny_run.root), "--model", "rsf"]
    )
    assert code == 1 and "no model 'rsf'" in message and "coxnet, coxph" in message


def test_real_photo_with_the_dlib_detector(predictor: Predictor, tmp_path: Path) -> None:
    from skimage.data import astronaut

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut()).save(photo, quality=95)
    result = predict_photos(predictor, [photo]).photos[0]
    assert result.scored, result.error()
    assert result.status in ("ok", "multiple_faces") and np.isfinite(result.risk)
    assert result.aligned.shape == (32, 32, 3) and result.edits.shape == (5, 32, 32, 3)


def test_choose_model_and_names() -> None:
    bundles = {"deepsurv": Path("a"), "coxnet": Path("b")}
    assert choose_model(bundles, None) == "coxnet"
    assert choose_model({"deepsurv": Path("a"), "coxph": Path("b")}, None) == "deepsurv"
    with pytest.raises(InputError, match="one of deepsurv, coxnet"):
        choose_model(bundles, "rsf")
    paths = [Path("a/x.jpg"), Path("b/x.png"), Path("c/<evil> name.png"), Path("d/...png")]
    assert photo_names(paths) == ["x", "x-2", "evil_name", "photo"]


def test_median_survival_never_reached_is_infinite() -> None:
    assert median_survival(pd.Series([0.9, 0.6, 0.5, 0.2], index=[1.0, 2.0, 3.0, 4.0])) == 3.0
    assert median_survival(pd.Series([0.9, 0.8], index=[1.0, 2.0])) == float("inf")


def test_flagged_photo_is_refused_unless_allowed(
    tiny_run: TinyRun, predictor: Predictor, tmp_path: Path
) -> None:
    # the cohort photo shrunk to 14 px must be magnified 32/14 > 2 times: the run's QC flags low_resolution
    scale = 14 / 32
    with Image.open(tiny_run.photo("S04")) as image:
        image.resize((14, 14), Image.Resampling.LANCZOS).save(tmp_path / "small.png")
    marks = pd.read_csv(tiny_run.landmarks, dtype={"patient_id": str}).set_index("patient_id").loc[["S04"]]
    marks = (marks * scale).rename(index={"S04": "small"}).reset_index()
    marks.to_csv(tmp_path / "marks.csv", index=False)
    args = ([tmp_path / "small.png"], tmp_path / "marks.csv")
    refused = predict_photos(predictor, *args).photos[0]
    assert refused.status == "low_resolution" and not refused.scored and "--allow-flagged" in refused.reason
    allowed = predict_photos(predictor, *args, allow_flagged=True).photos[0]
    assert allowed.status == "low_resolution" and allowed.scored and np.isfinite(allowed.risk)


def test_style_space_bundle_scores_and_edits_in_style_space(tiny_run: TinyRun, tmp_path: Path) -> None:
    import shutil

    from stylesurv.app.pipeline import read_run
    from stylesurv.gan.checkpoint import load_generator
    from stylesurv.gan.stylespace import with_styles
    from stylesurv.survival.bundle import fit_bundle
    from stylesurv.survival.data import FeatureSpec, join_latents, read_cohort_table
    from stylesurv.survival.registry import ModelFactory

    root = tmp_path / "run"
    shutil.copytree(tiny_run.root, root)
    generator = load_generator(read_run(root).generator).eval()
    cohort = with_styles(load_latents(read_run(root).latents), generator)
    data = join_latents(cohort, read_cohort_table(tiny_run.cohort), "styles")
    coxnet = ModelFactory("coxnet", options={"alphas": [0.02]})
    fit_bundle(data, FeatureSpec(space="styles", pca=8), coxnet, root / "fit" / "styles", folds=3)
    predictor = load_predictor(root, "styles")
    assert predictor.direction_model == "styles" and predictor.direction_styles
    assert predictor.direction is not None and predictor.direction.shape == (cohort.styles.shape[1],)
    p = predict_photos(predictor, [tiny_run.photo("S00")], tiny_run.landmarks).photos[0]
    assert p.scored, p.error()
    bundle = load_bundle(root / "fit" / "styles")
    scored = with_styles(Latents(patient_id=np.array([p.name]), wplus=p.code[None]), generator)
    np.testing.assert_allclose(p.risk, bundle.predict(scored)[0], rtol=1e-9)
    expected = predictor.direction.attribute(scored.styles)[0]
    assert p.health_attribute == pytest.approx(expected, rel=1e-9)
    # The edits move the style code: its middle frame is the reconstruction, its ends differ.
    assert np.abs(p.edits[2].astype(int) - p.reconstruction.astype(int)).max() <= 1
    assert np.abs(p.edits[0].astype(int) - p.edits[2].astype(int)).mean() > 0.5


def test_the_same_pixels_score_the_same_under_any_name_and_twice_in_one_call(
    tiny_run: TinyRun, predictor: Predictor, tmp_path: Path
) -> None:
    import shutil

    original = tiny_run.photo(COHORT_IDS[0])
    renamed = tmp_path / "someone_else.png"
    shutil.copy(original, renamed)
    landmarks = tmp_path / "landmarks.csv"
    table = pd.read_csv(tiny_run.landmarks)
    row = table[table.iloc[:, 0].astype(str) == COHORT_IDS[0]].copy()
    row.iloc[0, 0] = "someone_else"
    pd.concat([table, row]).to_csv(landmarks, index=False)
    result = predict_photos(predictor, [original, renamed, original], landmarks)
    risks = [p.risk for p in result.photos]
    codes = [p.code for p in result.photos]
    assert len(result.photos) == 3 and np.isfinite(risks).all()
    assert risks[0] == risks[1] == risks[2]
    np.testing.assert_array_equal(codes[0], codes[1])
    np.testing.assert_allclose(
        [p.health_attribute for p in result.photos], result.photos[0].health_attribute, rtol=1e-12
    )


def test_a_photo_named_like_a_formula_is_written_as_text(tiny_run: TinyRun, tmp_path: Path) -> None:
    formula = tmp_path / "=HYPERLINK(1).png"
    formula.write_bytes(b"not an image")
    out = tmp_path / "out"
    args = [
        "predict",
        str(formula),
        str(tiny_run.photo("S03")),
        "--run",
        str(tiny_run.root),
        "--out",
        str(out),
    ]
    invoke([*args, "--landmarks", str(tiny_run.landmarks)])
    import csv

    rows = list(csv.reader((out / "predictions.csv").read_text().splitlines()))
    cells = [cell for row in rows for cell in row]
    assert any("=HYPERLINK(1).png" in cell for cell in cells)
    for cell in cells:
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
        assert not cell.startswith("-") or float(cell) < 0, cell  # only negative numbers start so


def test_a_negative_upsample_is_named(tiny_run: TinyRun) -> None:
    code, message = invoke(
        ["predict", str(tiny_run.photo("S03")), "--run", str(tiny_run.root), "--upsample", "-1"]
    )
    assert code == 1 and "--upsample must be >= 0, got -1" in message
