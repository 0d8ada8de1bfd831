"""Bundles: no pickles, round trips, the latent direction explain relies on, health attribute, survival."""

import json

import numpy as np
import pandas as pd
import pytest

from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.survival.bundle import fit_bundle, load_bundle, load_cv_results
from stylesurv.survival.data import FeatureSpec, SurvivalData
from stylesurv.survival.models import LateFusion
from stylesurv.survival.registry import ModelFactory

from .conftest import weibull_ph

N, NUM_WS, W_DIM = 120, 3, 8


def _cohort(seed: int = 0) -> tuple[Latents, SurvivalData, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    wplus = rng.normal(size=(N, NUM_WS, W_DIM))
    lp = 1.2 * wplus[:, 0, 0] - 0.8 * wplus[:, 2, 3]
    y = weibull_ph(N, lp, seed=seed + 1)
    ids = np.array([f"p{i:03d}" for i in range(N)])
    clinical = pd.DataFrame({"patient_id": ids, "stage": rng.choice(["I", "II", "III"], N)})
    latents = Latents(patient_id=ids, wplus=wplus.astype(np.float32))
    data = SurvivalData(ids, y["time"], y["event"], codes=latents.wplus.astype(np.float64),
                        clinical=clinical[["stage"]])  # fmt: skip
    return latents, data, clinical


QUICK = {"coxnet": {"n_alphas": 8, "inner_folds": 2}, "rsf": {"n_estimators": 10, "inner_folds": 2}}


def _fit(tmp_path, kind: str, spec: FeatureSpec, clinical_kind: str | None = None):
    latents, data, clinical = _cohort()
    factory = ModelFactory(kind, clinical_kind=clinical_kind, options=QUICK.get(kind, {}))
    results, bundle = fit_bundle(data, spec, factory, tmp_path / kind, folds=2, seed=0)
    return latents, data, clinical, results, bundle


def test_coxnet_bundle_files_round_trip_and_latent_direction(tmp_path) -> None:
    latents, data, _, results, bundle = _fit(tmp_path, "coxnet", FeatureSpec(space="wplus", pca=6))
    folder = tmp_path / "coxnet"
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.safetensors", "cv_results.json", "model.json",
                                                        "oof_risk.csv"]  # fmt: skip
    from safetensors.numpy import load_file

    assert all(v.dtype != object for v in load_file(folder / "arrays.safetensors").values())  # plain tensors
    doc = json.loads((folder / "model.json").read_text())
    assert doc["model"]["kind"] == "coxnet" and len(doc["model"]["coef"]) == 6
    oof = pd.read_csv(folder / "oof_risk.csv")
    assert list(oof.columns) == ["patient_id", "time", "event", "repeat", "fold", "risk"] and len(oof) == N
    assert json.loads((folder / "cv_results.json").read_text())["n_patients"] == N

    again = load_bundle(folder)
    risk = again.predict(latents)
    np.testing.assert_allclose(risk, bundle.predict(latents))
    # the latent direction is d risk / d code: a step along it changes the risk by its squared norm
    direction = again.latent_direction()
    assert direction.shape == (NUM_WS, W_DIM)
    step = 1e-3 * direction / np.linalg.norm(direction)
    moved = Latents(patient_id=latents.patient_id, wplus=latents.wplus.astype(np.float64) + step)
    np.testing.assert_allclose(again.predict(moved) - risk, 1e-3 * np.linalg.norm(direction), rtol=1e-6)
    # ... and it found the true generating coordinates
    assert direction[0, 0] > 0 > direction[2, 3]
    # health attribute: latent units along the unit health direction -d/|d|
    health_step = Latents(patient_id=latents.patient_id, wplus=latents.wplus.astype(np.float64) - step * 1e3)
    np.testing.assert_allclose(
        again.health_attribute(health_step) - again.health_attribute(latents), 1.0, rtol=1e-6
    )
    curves = again.predict_survival_function(latents.subset(latents.patient_id[:4]))
    assert list(curves.index) == latents.patient_id[:4].tolist()
    assert (np.diff(curves.to_numpy(), axis=1) <= 1e-12).all() and curves.to_numpy().max() <= 1


def test_w_space_direction_has_w_dim(tmp_path) -> None:
    latents, *_ = _cohort()
    _, data, _ = _cohort()
    data.codes = data.codes.mean(axis=1)
    bundle = fit_bundle(data, FeatureSpec(space="w"), ModelFactory("coxph", options={"penalizers": (0.1,)}),
                        tmp_path / "w", folds=2)[1]  # fmt: skip
    assert bundle.latent_direction().shape == (W_DIM,)
    assert bundle.meta["model"]["summary"][0]["hr_lower_95"] > 0
    np.testing.assert_allclose(load_bundle(tmp_path / "w").predict(latents), bundle.predict(latents))


def test_fusion_bundle_needs_clinical_and_scales_the_direction(tmp_path) -> None:
    spec = FeatureSpec(space="wplus", pca=4, clinical=("stage",))
    latents, _, clinical, _, bundle = _fit(tmp_path, "coxnet", spec, clinical_kind="fusion")
    with pytest.raises(InputError, match="clinical"):
        bundle.predict(latents)
    again = load_bundle(tmp_path / "coxnet")
    shuffled = clinical.sample(frac=1.0, random_state=0)  # matched by patient_id, not row order
    np.testing.assert_allclose(
        again.predict(latents, clinical=shuffled), bundle.predict(latents, clinical=clinical)
    )
    assert again.latent_direction().shape == (NUM_WS, W_DIM)


def test_forest_bundle_round_trips_without_a_linear_direction(tmp_path) -> None:
    latents, _, _, _, bundle = _fit(tmp_path, "rsf", FeatureSpec(space="wplus", pca=4))
    again = load_bundle(tmp_path / "rsf")
    np.testing.assert_allclose(again.predict(latents), bundle.predict(latents))
    with pytest.raises(InputError, match="no linear latent direction"):
        again.latent_direction()
    health = again.health_attribute(latents)
    assert health.mean() == pytest.approx(0, abs=1e-9)  # standardised negative risk on the training cohort


def test_load_bundle_rejects_non_bundles(tmp_path) -> None:
    with pytest.raises(InputError, match="not a survival bundle"):
        load_bundle(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "something else"}')
    (tmp_path / "arrays.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(InputError):
        load_bundle(tmp_path)


def _aged_cohort(n: int = 600, seed: int = 3) -> tuple[Latents, SurvivalData, pd.DataFrame]:
    """Risk from a facial health coordinate (code [0, 0]) and age; age also shows in code [1, 2]."""
    rng = np.random.default_rng(seed)
    age = rng.normal(size=n)
    wplus = rng.normal(size=(n, NUM_WS, W_DIM))
    wplus[:, 1, 2] = age + 0.3 * rng.normal(size=n)  # the face looks older with age
    y = weibull_ph(n, 1.0 * wplus[:, 0, 0] + 1.0 * age, seed=seed + 1)
    ids = np.array([f"p{i:03d}" for i in range(n)])
    clinical = pd.DataFrame({"patient_id": ids, "age": age})
    latents = Latents(patient_id=ids, wplus=wplus.astype(np.float32))
    data = SurvivalData(ids, y["time"], y["event"], codes=wplus, clinical=clinical[["age"]])
    return latents, data, clinical


def test_joint_bundle_adjusts_the_health_direction_for_its_covariates(tmp_path) -> None:
    latents, data, clinical = _aged_cohort()
    quick = {"n_alphas": 10, "inner_folds": 2}
    plain = fit_bundle(data, FeatureSpec(space="wplus"), ModelFactory("coxnet", options=quick),
                       tmp_path / "plain", folds=2)[1]  # fmt: skip
    spec = FeatureSpec(space="wplus", clinical=("age",))
    joint = fit_bundle(data, spec, ModelFactory("coxnet", "joint", quick), tmp_path / "joint", folds=2)[1]
    assert joint.model_name == "coxnet|clinical" and joint.adjusted_for == ("age",)
    assert plain.adjusted_for == () and not isinstance(joint.model, LateFusion)

    def share(direction: np.ndarray, index: tuple[int, int]) -> float:
        return float(direction[index] ** 2 / np.sum(direction**2))

    # the latent-only model reads age from the face; adjusted for age, the direction is the health coordinate
    assert share(plain.latent_direction(), (1, 2)) > 0.3
    assert share(joint.latent_direction(), (1, 2)) < 0.05
    assert share(joint.latent_direction(), (0, 0)) > 0.8
    again = load_bundle(tmp_path / "joint")
    assert again.adjusted_for == ("age",)
    np.testing.assert_allclose(again.predict(latents, clinical), joint.predict(latents, clinical))
    np.testing.assert_allclose(again.latent_direction(), joint.latent_direction())


def test_face_bound_bundle_sees_and_moves_only_its_subspace(tmp_path) -> None:
    from stylesurv.gan.face_subspace import CodeRestriction

    latents, data, _ = _cohort()
    # A subspace holding the first risk coordinate (layer 0, dim 0) and a null one, not the second.
    basis = np.zeros((2, NUM_WS * W_DIM))
    basis[0, 0] = 1.0
    basis[1, [1, 2]] = np.sqrt(0.5)
    center = latents.wplus.reshape(N, -1).mean(axis=0).astype(np.float64)
    restriction = CodeRestriction(center, basis)
    factory = ModelFactory("coxnet", options=QUICK["coxnet"])
    spec = FeatureSpec(space="wplus")
    _, bundle = fit_bundle(data, spec, factory, tmp_path / "face", folds=2, seed=0, restriction=restriction)
    assert bundle.restriction is not None
    np.testing.assert_array_equal(bundle.restriction.basis, basis)  # stored in the bundle's arrays
    # Scoring applies the restriction: moving a code outside the subspace changes nothing.
    moved = latents.wplus.copy()
    moved[:, 2, 3] += 5.0  # the second risk coordinate, outside the subspace
    shifted = Latents(patient_id=latents.patient_id, wplus=moved)
    np.testing.assert_allclose(bundle.predict(shifted), bundle.predict(latents), rtol=1e-12)
    # The direction lies in the subspace and follows the first risk coordinate.
    gradient = bundle.latent_direction().reshape(-1)
    np.testing.assert_allclose(gradient, basis.T @ (basis @ gradient), atol=1e-12)
    assert gradient[0] > 0 and abs(gradient[0]) > 5 * np.abs(gradient[1:]).max()
    with pytest.raises(InputError, match="do not fit a subspace"):
        restriction.apply(np.zeros((2, 5)))


def test_a_bundle_reads_back_its_cv_results(tmp_path) -> None:
    _, _, _, results, _ = _fit(tmp_path, "coxnet", FeatureSpec(space="wplus", pca=6))
    folder = tmp_path / "coxnet"
    loaded = load_cv_results(folder)
    assert loaded == results  # JSON and out-of-fold table, to the last bit
    assert loaded.to_json() + "\n" == (folder / "cv_results.json").read_text()
    assert loaded.headline() == results.headline()
    (folder / "oof_risk.csv").unlink()
    assert len(load_cv_results(folder).oof) == 0
    with pytest.raises(InputError, match="no cv_results.json"):
        load_cv_results(tmp_path)
