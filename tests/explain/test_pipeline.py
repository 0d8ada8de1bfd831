import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stylesurv.app.cli import main
from stylesurv.cohort.table import load_clinical
from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.explain.config import ExplainConfig
from stylesurv.explain.direction import health_direction
from stylesurv.explain.outputs import explain_run, find_face_subspace
from stylesurv.explain.result import FaceSubspaceRefit, NuisanceRemoval, load_explain_result
from stylesurv.studies.refit import (
    face_share_meter,
    face_subspace_evaluation,
    held_out_health,
    held_out_split,
    refit_inputs,
    remove_nuisance_evaluation,
)
from stylesurv.survival.bundle import load_bundle
from tests.explain.toys import region_generator, synthetic_cohort


class GradientBundle:
    def __init__(self, gradient: np.ndarray) -> None:
        self.gradient = gradient

    def latent_direction(self) -> np.ndarray:
        return self.gradient


def test_explain_writes_every_output(tmp_path: Path) -> None:
    gen = region_generator()
    rng = np.random.default_rng(0)
    ids = np.array([f"p{i}" for i in range(30)] + ["../evil"])
    codes = rng.standard_normal((31, gen.num_ws, gen.w_dim))
    latents = Latents(patient_id=ids, wplus=codes.astype(np.float32))
    gradient = np.zeros((gen.num_ws, gen.w_dim))
    gradient[0, 1] = 1.0
    truth = pd.DataFrame({"patient_id": ids, "lp_face": codes[:, 0, 1], "background_value": codes[:, 0, 0]})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    options = ExplainConfig(steps=5, patients=["p3", "../evil"], random_directions=2)
    result = explain_run(
        GradientBundle(gradient),
        gen,
        latents,
        tmp_path / "out",
        truth_csv=tmp_path / "truth.csv",
        options=options,
    )
    out = tmp_path / "out"
    for name in (
        "edit_mean.png",
        "edit_mean.gif",
        "edit_patients.png",
        "edit_patients.gif",
        "summary.json",
        "health_attribute.csv",
        "nuisance.csv",
        "recon/p3.png",
        "edit_pattern.png",
    ):
        assert (out / name).is_file(), name
    assert list((out / "recon").iterdir()) == [out / "recon" / "p3.png"]  # the unsafe id names no file
    assert json.loads((out / "summary.json").read_text())["patients"] == ["p3", "../evil"]
    table = pd.read_csv(out / "health_attribute.csv")
    assert len(table) == 31
    assert list(table.columns) == ["patient_id", "health_attribute", "health_coarse", "pattern_attribute"]
    # Risk rises with lp_face, so the health attribute is exactly its negative (standardised).
    assert result.truth_correlations is not None and result.probes is not None
    assert result.truth_correlations["lp_face"] == pytest.approx(-1.0)
    probe = {p.name: p for p in result.probes.items}["background_value"]
    assert probe.r2_cv > 0.95 and abs(probe.cosine) < 0.05
    # d (code axis 1) is orthogonal to the background probe (axis 0): nothing of it is removed.
    orthogonal = result.nuisance_orthogonal
    assert orthogonal is not None and orthogonal.n_directions >= 1 and orthogonal.removed_share < 0.01
    assert result.attribution is None and result.face_subspace is None  # no aligned folder
    np.testing.assert_allclose(np.load(out / "direction_orthogonal.npy"), -gradient, atol=0.05)


def test_explain_attribution_reports_the_strict_margin_group_and_orthogonal_shares(tmp_path: Path) -> None:
    from PIL import Image

    from tests.explain.toys import region_mask

    gen = region_generator()  # code (layer 0, dim k) paints mask region k only
    rng = np.random.default_rng(0)
    ids = np.array([f"p{i}" for i in range(80)])
    codes = rng.standard_normal((80, gen.num_ws, gen.w_dim))
    (tmp_path / "aligned" / "masks").mkdir(parents=True)
    for pid in ids:
        Image.fromarray(region_mask(gen.img_resolution)).save(tmp_path / "aligned" / "masks" / f"{pid}.png")
    pd.DataFrame({"patient_id": ids, "background_value": codes[:, 0, 0]}).to_csv(
        tmp_path / "truth.csv", index=False
    )
    gradient = np.zeros((gen.num_ws, gen.w_dim))
    gradient[0, 1] = -1.0  # the face coordinate
    gradient[0, 0] = -0.5  # and some background, which the background probe finds
    latents = Latents(patient_id=ids, wplus=codes.astype(np.float32))
    options = ExplainConfig(steps=3, random_directions=2, attribution_patients=8)
    result = explain_run(
        GradientBundle(gradient),
        gen,
        latents,
        tmp_path / "out",
        aligned_dir=tmp_path / "aligned",
        truth_csv=tmp_path / "truth.csv",
        options=options,
        subspace=find_face_subspace(gen, latents, gradient.shape, tmp_path / "aligned", options),
    )
    attribution, orthogonal = result.attribution, result.nuisance_orthogonal
    pattern, found = result.pattern, result.face_subspace
    assert attribution is not None and orthogonal is not None and pattern is not None and found is not None
    assert attribution.regions == ("background", "face", "clothing", "other")
    face = attribution.health["face"]
    assert 0.0 < face < 1.0
    assert attribution.face_margin_px == 1 and attribution.face_with_margin is not None
    assert attribution.face_with_margin.health >= face
    assert attribution.groups is not None and list(attribution.groups) == ["coarse"]  # 4 layers: 4-8 px
    assert attribution.groups["coarse"].shares.health["face"] == pytest.approx(face)
    # The background part (0.5^2 / 1.25 of |d|^2) is removed; what is left paints only the face.
    assert orthogonal.removed_share == pytest.approx(0.2, abs=0.02)
    assert orthogonal.attribution is not None and orthogonal.attribution.health["face"] > max(0.95, face)
    # Independent unit-variance codes: the pattern (covariance times gradient) is near d (80 samples only).
    assert pattern.cosine_with_d > 0.85
    assert pattern.attribution is not None
    assert pattern.attribution.health["face"] == pytest.approx(face, abs=0.1)
    # The face subspace is the face coordinate alone; d's part in it is 1 / sqrt(1.25) of d.
    assert found.dim == 1 and found.n_patients == 16 and found.shares[0] > 0.99
    assert found.cosine_with_d == pytest.approx(1 / np.sqrt(1.25), abs=0.01)
    assert found.attribution is not None and found.attribution.health["face"] > 0.99 > face
    local = np.load(tmp_path / "out" / "direction_face_local.npy")
    assert local[0, 1] == pytest.approx(1.0, abs=1e-3)
    assert result.images.edit_face_local == "edit_face_local.png"
    assert load_explain_result(tmp_path / "out") == result  # summary.json reads back as what was returned


def test_direction_of_a_fitted_coxnet_bundle_points_away_from_the_risk_axes(
    fitted: tuple[Path, Latents],
) -> None:
    from stylesurv.survival.bundle import load_bundle

    root, latents = fitted
    bundle = load_bundle(root / "bundle")
    d = health_direction(bundle, latents.codes("w"))
    # Risk rises along the face axis and (confounded) the background axis, so d points against both.
    assert d.vector[0] < -0.5 and d.vector[1] < -0.3 and np.abs(d.vector[2:]).max() < 0.2
    risk = bundle.predict(latents)
    assert np.corrcoef(d.attribute(latents.codes("w")), risk)[0, 1] == pytest.approx(-1.0, abs=1e-6)


def test_removing_the_confounded_background_keeps_the_held_out_c_index(
    fitted: tuple[Path, Latents], tmp_path: Path
) -> None:
    from stylesurv.report.html import write_report

    root, latents = fitted
    result = remove_nuisance_evaluation(
        load_bundle(root / "bundle"), latents, load_clinical(root), None, root / "truth.csv", seed=0
    )
    assert result["split"] == "truth.csv split column" and result["n_directions"] >= 1
    # The plain model learns the background, which carries no signal in the test split.
    assert result["c_index_removed"] > result["c_index_plain"] + 0.03
    # Health attribute vs the true facial risk on held-out patients: strongly negative once cleaned.
    assert result["r_lp_face_removed"] < -0.95 < result["r_lp_face_plain"]
    # The report shows the evaluation as it comes out of it.
    gradient = np.zeros(6)
    gradient[0] = 1.0
    explain_run(
        GradientBundle(gradient),
        region_generator(),
        latents,
        tmp_path / "run" / "explain",
        options=ExplainConfig(steps=3, random_directions=1),
        remove_nuisance=NuisanceRemoval.from_json(result),
    )
    html = write_report(tmp_path / "run", no_photos=True)[0].read_text()
    assert "codes without nuisance directions" in html and f"{result['c_index_removed']:.3f}" in html


def test_face_subspace_refit_keeps_the_c_index_that_the_face_axis_carries(
    fitted: tuple[Path, Latents], tmp_path: Path
) -> None:
    from stylesurv.gan.face_subspace import FaceSubspace

    root, latents = fitted
    codes = latents.codes("w").astype(np.float64)
    vectors = np.zeros((2, 6))
    vectors[0, 0] = 1.0  # the true facial-risk axis, all of its change in the face
    vectors[1, [1, 3]] = np.array([2.0, 1.0]) / np.sqrt(5.0)  # mostly the (confounded) background axis
    subspace = FaceSubspace(codes.mean(axis=0), vectors[:1], np.array([1.0, 0.55]), vectors, 0.8, 6, 4, 1.0)
    assert subspace.at(0.5).dim == 2 and subspace.at(0.99).dim == 1
    metered: list[np.ndarray] = []

    def meter(gradient: np.ndarray) -> dict[str, float]:  # the share of the gradient on the face axis
        metered.append(gradient)
        return {"face_share": float(gradient[0] ** 2 / np.sum(gradient**2))}

    result = face_subspace_evaluation(
        load_bundle(root / "bundle"),
        latents,
        load_clinical(root),
        subspace,
        root / "truth.csv",
        seed=0,
        meter=meter,
    )
    assert result["dim"] == 1 and result["split"] == "truth.csv split column"
    # The face axis alone holds all the test-split signal (the background's is confounded, training only).
    assert result["c_index_face"] > max(result["c_index_all"], 0.65)
    assert result["c_index_rest"] < 0.56
    assert result["r_lp_face_face"] < -0.99
    assert result["face_share_face"] == pytest.approx(1.0) and result["face_share_all"] < 0.9
    # The curve: at 0.5 the background axis joins and the confounded signal with it.
    curve = {point["threshold"]: point for point in result["curve"]}
    assert list(curve) == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert [point["dim"] for point in curve.values()] == [2, 1, 1, 1, 1]
    assert curve[0.8]["c_index"] == result["c_index_face"] == curve[0.9]["c_index"]
    assert curve[0.5]["c_index"] < curve[0.8]["c_index"] and curve[0.5]["face_share"] < 0.9
    # Each refit is edited along its gradient inside the span its codes vary in (standardising the two
    # coordinates of the second vector by their own SDs alone would tilt it out of the span).
    outside = metered[0] - subspace.at(0.5).project(metered[0])
    assert np.linalg.norm(outside) < 1e-9 * np.linalg.norm(metered[0])
    assert np.allclose(subspace.project(metered[-1]), 0.0, atol=1e-12)  # "rest": outside the subspace
    wrong = FaceSubspace(np.zeros(7), np.zeros((0, 7)), np.zeros(0), np.zeros((0, 7)), 0.8, 7, 4, 1.0)
    with pytest.raises(InputError, match="another latent space"):
        face_subspace_evaluation(load_bundle(root / "bundle"), latents, load_clinical(root), wrong)
    # The report shows the subspace and the refits as they come out of the explain stage.
    from PIL import Image

    from stylesurv.report.html import write_report
    from tests.explain.toys import region_mask

    gen = region_generator()
    (tmp_path / "aligned" / "masks").mkdir(parents=True)
    for pid in latents.patient_id:
        Image.fromarray(region_mask(gen.img_resolution)).save(tmp_path / "aligned" / "masks" / f"{pid}.png")
    gradient = np.zeros(6)
    gradient[1] = 1.0
    options = ExplainConfig(steps=3, random_directions=1, attribution_patients=8)
    explained = explain_run(
        GradientBundle(gradient),
        gen,
        latents,
        tmp_path / "run" / "explain",
        aligned_dir=tmp_path / "aligned",
        options=options,
        face_subspace_refit=FaceSubspaceRefit.from_json(result),
        subspace=find_face_subspace(gen, latents, (6,), tmp_path / "aligned", options),
    )
    assert explained.face_subspace is not None and explained.face_subspace.n_components == 6
    assert explained.face_subspace_refit is not None
    assert explained.face_subspace_refit.to_json() == result  # recorded as the evaluation returned it
    html = write_report(tmp_path / "run", no_photos=True)[0].read_text()
    assert "Does the signal live in the face?" in html and "the face subspace only" in html
    assert f"{result['c_index_face']:.3f}" in html and f"{result['c_index_rest']:.3f}" in html
    assert "The price of a face-bound model" in html and f"{curve[0.5]['c_index']:.3f}" in html


def test_face_share_meter_measures_an_edit_like_the_attribution(
    fitted: tuple[Path, Latents], tmp_path: Path
) -> None:
    from PIL import Image

    from tests.explain.toys import region_mask

    _, latents = fitted
    gen = region_generator()
    (tmp_path / "masks").mkdir()
    for pid in latents.patient_id:
        Image.fromarray(region_mask(gen.img_resolution)).save(tmp_path / "masks" / f"{pid}.png")
    options = ExplainConfig(attribution_patients=8)
    assert face_share_meter(gen, latents, (6,), tmp_path / "nowhere", options) is None
    meter = face_share_meter(gen, latents, (6,), tmp_path, options)
    assert meter is not None
    # Code dim 1 paints the face in layer 0 (the other layers add faint noise everywhere); dim 0 the
    # background; the share does not depend on the gradient's sign or length.
    face = meter(np.eye(6)[1])
    assert face["face_share"] > 0.8 and face["face_share_with_margin"] >= face["face_share"]
    assert meter(-3.0 * np.eye(6)[1])["face_share"] == pytest.approx(face["face_share"], rel=1e-6)
    assert meter(np.eye(6)[0])["face_share"] < 0.2


def test_counterfactual_span_removes_the_confounded_background(fitted: tuple[Path, Latents]) -> None:
    root, latents = fitted
    # Recolouring the background moves axis 1 of every code (and nothing else): that span is removed.
    rng = np.random.default_rng(9)
    moved = latents.codes("w").astype(np.float64)
    moved[:, 1] = rng.standard_normal(len(moved))
    swapped = Latents(patient_id=latents.patient_id, w=moved)
    args = (load_bundle(root / "bundle"), latents, load_clinical(root), None, root / "truth.csv")
    result = remove_nuisance_evaluation(*args, seed=0, source="counterfactual", swapped=swapped)
    assert result["n_directions"] == 1 and result["nuisance_source"] == "counterfactual"
    truth = remove_nuisance_evaluation(*args, seed=0, source="truth")
    assert result["c_index_removed"] == pytest.approx(truth["c_index_removed"], abs=0.01)
    assert result["c_index_removed"] > result["c_index_plain"] + 0.03
    with pytest.raises(InputError, match="codes of the recoloured photos"):
        remove_nuisance_evaluation(*args, seed=0, source="counterfactual")


def test_held_out_split_holds_out_exactly_the_given_patients() -> None:
    ids = np.array(["a", "b", "c", "d"])
    event = np.array([1, 0, 1, 0])
    train, test, name = held_out_split(ids, event, None, seed=0, test_ids=["d", "b", "unknown"])
    assert train.tolist() == [0, 2] and test.tolist() == [1, 3] and name == "given held-out patients"
    for wrong in (["unknown"], ids.tolist()):
        with pytest.raises(InputError, match="held-out patients"):
            held_out_split(ids, event, None, seed=0, test_ids=wrong)


def test_held_out_attribute_tracks_the_true_facial_risk_of_unseen_patients(
    fitted: tuple[Path, Latents], tmp_path: Path
) -> None:
    from stylesurv.survival.metrics import harrell_c

    root, _ = fitted  # the bundle only names the model kind and the features to refit
    world = tmp_path / "world"
    latents, codes = synthetic_cohort(world, confounded=False)
    test_ids = latents.patient_id[::3]
    result = held_out_health(
        load_bundle(root / "bundle"),
        latents,
        load_clinical(world),
        world / "truth.csv",
        seed=0,
        test_ids=test_ids,
    )
    assert (result["n_train"], result["n_test"]) == (240 - len(test_ids), len(test_ids))
    # Risk rises along axis 0 alone, so the direction fitted on the training patients is -axis 0 and the
    # held-out attribute is -lp_face up to the small weights the model puts on the other axes.
    assert result["correlations"]["lp_face"] < -0.95
    clinical = pd.read_csv(world / "clinical.csv").iloc[::3]
    oracle = harrell_c(clinical["time"].to_numpy(), clinical["event"].to_numpy(), codes[::3, 0])
    assert result["c_index_test"] == pytest.approx(oracle, abs=0.03)
    # Nothing about the held-out patients' outcomes enters the direction: scrambling them changes the
    # held-out C-index but not the attribute.
    table = pd.read_csv(world / "clinical.csv")
    held = table.index % 3 == 0
    table.loc[held, "time"] = table.loc[held, "time"].to_numpy()[::-1]
    table.to_csv(world / "clinical.csv", index=False)
    scrambled = held_out_health(
        load_bundle(root / "bundle"), latents, load_clinical(world), world / "truth.csv", 0, test_ids
    )
    assert scrambled["correlations"] == pytest.approx(result["correlations"], rel=1e-9)
    assert abs(scrambled["c_index_test"] - result["c_index_test"]) > 0.05


def test_held_out_refit_of_an_adjusted_bundle_keeps_its_clinical_adjusters(tmp_path: Path) -> None:
    from stylesurv.survival.bundle import fit_bundle
    from stylesurv.survival.data import FeatureSpec, join_latents, read_cohort_table
    from stylesurv.survival.registry import ModelFactory

    # Risk from the face (axis 0) and age; the face also shows age (axis 2). Refitted latent-only, the
    # held-out attribute mixes in age; refitted like the adjusted bundle, it tracks the facial risk alone.
    world = tmp_path / "world"
    latents, codes = synthetic_cohort(world, n=400, confounded=False)
    rng = np.random.default_rng(5)
    age = rng.standard_normal(len(codes))
    codes[:, 2] = age + 0.3 * rng.standard_normal(len(codes))
    latents = Latents(patient_id=latents.patient_id, w=codes.astype(np.float32))
    table = pd.read_csv(world / "clinical.csv")
    table["time"] = (rng.exponential(np.exp(-1.2 * codes[:, 0] - 1.2 * age)) * 1000 + 1.0).round(1)
    table["age"] = age
    table.to_csv(world / "clinical.csv", index=False)
    data = join_latents(latents, read_cohort_table(world), "w", ("age",))
    spec = FeatureSpec(space="w", clinical=("age",))
    fit_bundle(data, spec, ModelFactory("coxnet", "joint"), tmp_path / "joint", folds=2)
    fit_bundle(data, FeatureSpec(space="w"), ModelFactory("coxnet"), tmp_path / "plain", folds=2)
    inputs = refit_inputs(load_bundle(tmp_path / "joint"), latents, load_clinical(world))
    assert inputs.spec.clinical == ("age",) and inputs.factory.clinical_kind == "joint"
    assert inputs.factory.options == {"l1_ratio": 0.1}  # the bundle's own penalty mix
    adjusted = held_out_health(
        load_bundle(tmp_path / "joint"), latents, load_clinical(world), world / "truth.csv", seed=0
    )
    plain = held_out_health(
        load_bundle(tmp_path / "plain"), latents, load_clinical(world), world / "truth.csv", seed=0
    )
    assert adjusted["correlations"]["lp_face"] < -0.9
    assert plain["correlations"]["lp_face"] > adjusted["correlations"]["lp_face"] + 0.1
    # C of the face part alone: the whole model for a latent-only bundle; below the whole adjusted model,
    # whose age term carries half of the true risk
    assert plain["c_index_face_test"] == pytest.approx(plain["c_index_test"], abs=1e-12)
    assert 0.6 < adjusted["c_index_face_test"] < adjusted["c_index_test"] - 0.05


def test_remove_nuisance_takes_the_split_and_the_nuisance_source(
    fitted: tuple[Path, Latents],
) -> None:
    root, latents = fitted
    truth = pd.read_csv(root / "truth.csv")
    args = (load_bundle(root / "bundle"), latents, load_clinical(root), None, root / "truth.csv")
    default = remove_nuisance_evaluation(*args, seed=0)
    given = remove_nuisance_evaluation(
        *args, seed=0, test_ids=truth.loc[truth["split"] == "test", "patient_id"]
    )
    assert given["split"] == "given held-out patients"
    assert given["c_index_removed"] == default["c_index_removed"] and given["n_test"] == default["n_test"]
    with pytest.raises(InputError, match="aligned folder"):
        remove_nuisance_evaluation(*args, source="photo")
    with pytest.raises(InputError, match="one of truth, photo, counterfactual"):
        remove_nuisance_evaluation(*args, source="clothes")


def test_explain_command_needs_cohort_for_remove_nuisance(
    fitted: tuple[Path, Latents], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = fitted
    args = [
        "explain",
        "--bundle",
        str(root / "bundle"),
        "--generator",
        str(tmp_path / "g.safetensors"),
        "--latents",
        str(root / "latents.npz"),
        "--out",
        str(tmp_path / "o"),
        "--remove-nuisance",
    ]
    assert main(args) == 1
    assert main([*args[:-1], "--steps", "4"]) == 1
    assert main([*args[:-1], "--counterfactual", str(tmp_path)]) == 1  # needs --remove-nuisance
    assert "of --remove-nuisance; add" in capsys.readouterr().err.replace("\n", " ")


def test_explain_command_end_to_end(fitted: tuple[Path, Latents], tmp_path: Path) -> None:
    from PIL import Image

    from stylesurv.gan.checkpoint import save_networks
    from stylesurv.gan.networks import Generator
    from tests.explain.toys import region_mask

    root, latents = fitted
    gen = Generator(
        z_dim=6,
        c_dim=0,
        w_dim=6,
        img_resolution=16,
        img_channels=3,
        mapping_kwargs={"num_layers": 1},
        synthesis_kwargs={"channel_base": 128, "channel_max": 16},
    )
    save_networks(tmp_path / "g.safetensors", G_ema=gen)
    aligned = tmp_path / "aligned"
    (aligned / "masks").mkdir(parents=True)
    for pid in latents.patient_id[:20]:
        Image.fromarray(region_mask(32)).save(aligned / "masks" / f"{pid}.png")
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(aligned / f"{pid}.png")
    out = tmp_path / "explain"
    code = main(
        [
            "-q",
            "explain",
            "--bundle",
            str(root / "bundle"),
            "--generator",
            str(tmp_path / "g.safetensors"),
            "--latents",
            str(root / "latents.npz"),
            "--aligned",
            str(aligned),
            "--truth",
            str(root / "truth.csv"),
            "--remove-nuisance",
            "--cohort",
            str(root),
            "--steps",
            "3",
            "--random-directions",
            "2",
            "--attribution-patients",
            "8",
            "--face-patients",
            "3",
            "--face-threshold",
            "0.5",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["face_subspace"]["n_patients"] == 3 and summary["face_subspace"]["threshold"] == 0.5
    assert summary["face_subspace_refit"]["n_test"] == summary["remove_nuisance"]["n_test"]
    assert summary["attribution"]["n_patients"] == 8 and summary["attribution"]["n_fallback_masks"] <= 8
    assert sum(summary["attribution"]["health"].values()) == pytest.approx(1.0)
    assert summary["remove_nuisance"]["c_index_removed"] > summary["remove_nuisance"]["c_index_plain"]
    assert summary["truth_correlations"]["lp_face"] < -0.5
