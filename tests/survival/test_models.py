"""Models against published fits and direct library calls; tree export against scikit-survival."""

import numpy as np
import pandas as pd
import pytest
from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.linear_model import CoxnetSurvivalAnalysis

from stylesurv.core.errors import InputError
from stylesurv.survival.data import make_y
from stylesurv.survival.metrics import harrell_c
from stylesurv.survival.models import (
    CoxNet,
    CoxPH,
    DeepSurv,
    GradientBoostedCox,
    LateFusion,
)
from stylesurv.survival.models import (
    RandomSurvivalForest as RSF,
)
from stylesurv.survival.registry import (
    FIT_KINDS,
    JOINT_KINDS,
    KINDS,
    LATENT_KINDS,
    ModelFactory,
    restore_model,
)


def test_coxph_on_rossi_matches_the_published_coefficients() -> None:
    from lifelines.datasets import load_rossi

    rossi = load_rossi()
    names = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    model = CoxPH(penalizers=(0.0,), feature_names=names).fit(
        rossi[names].to_numpy(float), make_y(rossi["week"].to_numpy(float), rossi["arrest"].to_numpy())
    )
    # Published Cox PH fit of the Rossi recidivism data (Efron ties): lifelines' CoxPHFitter docstring
    # (print_summary on load_rossi(), 2 decimals) and Survival.jl's documentation (coxph on the same data:
    # fin -0.379416, age -0.0574299, race 0.31392, wexp -0.14981, mar -0.433724, paro -0.0848615,
    # prio 0.091521; standard errors 0.191379 for fin, 0.0286469 for prio).
    published = [-0.379, -0.057, 0.314, -0.150, -0.434, -0.085, 0.091]
    np.testing.assert_allclose(model.coef_, published, atol=1e-3)
    rows = {r["covariate"]: r for r in model.summary_}
    assert rows["fin"]["se"] == pytest.approx(0.191379, abs=1e-3)
    assert rows["prio"]["hazard_ratio"] == pytest.approx(np.exp(0.091521), abs=1e-3)
    assert rows["fin"]["hr_lower_95"] < rows["fin"]["hazard_ratio"] < rows["fin"]["hr_upper_95"]


@pytest.mark.parametrize("penalizer", [0.0, 0.05, 0.5])
def test_ridge_cox_equals_lifelines_coxphfitter(penalizer: float) -> None:
    from lifelines import CoxPHFitter
    from lifelines.datasets import load_rossi

    rossi = load_rossi()  # weekly times: many tied deaths, so Efron's correction matters
    names = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    # lifelines stops Newton-Raphson at a relative log-likelihood change of 1e-9 (coefficients within ~2e-5
    # of the optimum with a penalty); tighter tolerances make it converge to the exact optimum we compare to.
    tight = {"precision": 1e-12, "r_precision": 1e-14}
    reference = CoxPHFitter(penalizer=penalizer).fit(rossi, "week", "arrest", fit_options=tight)
    model = CoxPH(penalizers=(penalizer,), feature_names=names).fit(
        rossi[names].to_numpy(float), make_y(rossi["week"].to_numpy(float), rossi["arrest"].to_numpy())
    )
    np.testing.assert_allclose(model.coef_, reference.params_[names].to_numpy(), atol=1e-6)
    se = [row["se"] for row in model.summary_]
    np.testing.assert_allclose(se, reference.standard_errors_[names].to_numpy(), rtol=1e-5)
    upper = [row["hr_upper_95"] for row in model.summary_]
    np.testing.assert_allclose(
        upper, reference.summary.loc[names, "exp(coef) upper 95%"].to_numpy(), rtol=1e-5
    )


def _gbsg2() -> tuple[np.ndarray, np.ndarray]:
    from sksurv.datasets import load_gbsg2

    X, y = load_gbsg2()
    X = pd.get_dummies(X, drop_first=True, dtype=float)  # horTh, menostat, tgrade -> indicators
    X = (X - X.mean()) / X.std()
    return X.to_numpy(float), make_y(y["time"], y["cens"])


def test_coxnet_on_gbsg2_equals_a_direct_sksurv_fit() -> None:
    X, y = _gbsg2()
    model = CoxNet(l1_ratio=0.7, n_alphas=15, inner_folds=3, seed=0).fit(X, y)
    alpha = model.params_["alpha"]
    # same path: bit-for-bit the coefficients scikit-survival gives at that penalty
    path = CoxnetSurvivalAnalysis(l1_ratio=0.7, alphas=model.alphas_, max_iter=100_000).fit(X, y)
    j = int(np.flatnonzero(model.alphas_ == alpha)[0])
    np.testing.assert_allclose(model.coef_, path.coef_[:, j], atol=1e-12)
    # a fresh single-penalty fit converges to the same solution
    single = CoxnetSurvivalAnalysis(l1_ratio=0.7, alphas=[alpha], max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(model.coef_, single.coef_[:, 0], atol=2e-3)
    assert 0 < alpha < model.alphas_[0]  # inner CV picked an interior penalty on GBSG2


def test_coxnet_inner_cv_score_prefers_signal(linear_data) -> None:
    X, y, _ = linear_data
    model = CoxNet(seed=0).fit(X, y)
    assert set(np.flatnonzero(model.coef_)) >= {0, 1}
    assert model.coef_[0] > 0 > model.coef_[1]


def test_tree_export_matches_sksurv(linear_data) -> None:
    X, y, _ = linear_data
    forest = RandomSurvivalForest(n_estimators=8, min_samples_leaf=5, random_state=0).fit(X, y)
    packed = RSF()
    packed.pack(forest)
    np.testing.assert_allclose(packed.predict(X), forest.predict(X), rtol=1e-12)
    event_times = forest.unique_times_[forest.is_event_time_]
    reference = forest.predict_survival_function(X, return_array=True)[:, forest.is_event_time_]
    np.testing.assert_allclose(packed.predict_survival_function(X, event_times), reference, atol=1e-6)

    booster = GradientBoostingSurvivalAnalysis(n_estimators=15, max_depth=2, random_state=0).fit(X, y)
    boosted = GradientBoostedCox()
    boosted.pack(booster)
    offset = booster.predict(X) - boosted.predict(X)  # scikit-survival adds a constant initial score
    np.testing.assert_allclose(offset, offset[0], atol=1e-10)


@pytest.mark.parametrize(
    "model",
    [
        RSF(n_estimators=10, min_samples_leafs=(5, 10), inner_folds=2),
        GradientBoostedCox(n_estimators_grid=(10, 30), inner_folds=2),
        DeepSurv(hidden=(8,), max_epochs=40, weight_decays=(1e-3,)),
        CoxPH(penalizers=(0.1, 1.0), inner_folds=2),
    ],
    ids=lambda m: m.kind,
)
def test_models_learn_and_round_trip_through_export(linear_data, model) -> None:
    X, y, _ = linear_data
    model.fit(X, y)
    assert harrell_c(y["time"], y["event"], model.predict(X)) > 0.7
    config, arrays = model.export()
    restored = restore_model(config, arrays)
    np.testing.assert_allclose(restored.predict(X), model.predict(X), rtol=1e-6, atol=1e-9)
    times = np.quantile(y["time"], [0.2, 0.5, 0.8])
    survival = restored.predict_survival_function(X, times)
    np.testing.assert_allclose(survival, model.predict_survival_function(X, times), atol=1e-6)
    assert ((survival >= 0) & (survival <= 1)).all() and (np.diff(survival, axis=1) <= 1e-12).all()


def test_deepsurv_is_seeded(linear_data) -> None:
    X, y, _ = linear_data
    state = np.random.get_state()[1].copy()
    a = DeepSurv(hidden=(8,), max_epochs=15, weight_decays=(1e-3,), seed=3).fit(X, y).predict(X)
    b = DeepSurv(hidden=(8,), max_epochs=15, weight_decays=(1e-3,), seed=3).fit(X, y).predict(X)
    c = DeepSurv(hidden=(8,), max_epochs=15, weight_decays=(1e-3,), seed=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # no global RNG side effect


def test_late_fusion_weights_an_out_of_fold_image_score(linear_data) -> None:
    X, y, _ = linear_data
    fusion = LateFusion(lambda s: CoxNet(seed=s, n_alphas=10), n_image=4, inner_folds=3, seed=0).fit(X, y)
    # the fusion risk is linear in the image features with gradient image_coef()
    eps = 1e-4
    base = fusion.predict(X[:5])
    bumped = X[:5].copy()
    bumped[:, 0] += eps
    assert np.allclose((fusion.predict(bumped) - base) / eps, fusion.image_coef()[0], rtol=1e-4)
    assert fusion.cox_.coef_[0] > 0  # a higher image score means a higher hazard
    restored = restore_model(*fusion.export())
    np.testing.assert_allclose(restored.predict(X), fusion.predict(X), atol=1e-10)


def test_ridge_cox_per_column_penalty_equals_lifelines() -> None:
    from lifelines import CoxPHFitter
    from lifelines.datasets import load_rossi

    rossi = load_rossi()
    names = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    penalty = np.array([0.3, 0.3, 0.3, 0.3, 0.3, 0.0, 0.0])  # the last two columns are adjusters
    tight = {"precision": 1e-12, "r_precision": 1e-14}
    reference = CoxPHFitter(penalizer=penalty).fit(rossi, "week", "arrest", fit_options=tight)
    y = make_y(rossi["week"].to_numpy(float), rossi["arrest"].to_numpy())
    model = CoxPH(penalizers=(0.3,), feature_names=names, unpenalized=2).fit(rossi[names].to_numpy(float), y)
    np.testing.assert_allclose(model.coef_, reference.params_[names].to_numpy(), atol=1e-6)
    assert model.params_ == {"penalizer": 0.3, "unpenalized": 2}
    # the penalty really is per column: penalising all of them gives other coefficients
    uniform = CoxPH(penalizers=(0.3,), feature_names=names).fit(rossi[names].to_numpy(float), y)
    assert np.abs(uniform.coef_[5:] - model.coef_[5:]).max() > 0.01


def test_coxnet_leaves_adjustment_columns_unpenalised(linear_data) -> None:
    X, y, _ = linear_data
    # a penalty so strong that every penalised coefficient is zero: the two trailing (unpenalised) columns
    # then hold the ordinary Cox fit on those columns alone
    model = CoxNet(alphas=[10.0], unpenalized=2).fit(X, y)
    assert np.all(model.coef_[:4] == 0)
    alone = CoxPH(penalizers=(0.0,)).fit(X[:, 4:], y)
    np.testing.assert_allclose(model.coef_[4:], alone.coef_, atol=1e-3)
    assert model.params_["unpenalized"] == 2
    with pytest.warns(UserWarning, match="all coefficients are zero"):  # without adjusters: nothing left
        assert np.all(CoxNet(alphas=[10.0]).fit(X, y).coef_ == 0)
    with pytest.raises(InputError, match="no penalised feature"):
        CoxNet(alphas=[1.0], unpenalized=6).fit(X, y)


def test_joint_factory_adjusts_linear_models_only() -> None:
    names = ["z1", "z2", "z3", "age", "stage"]
    model = ModelFactory("coxnet", clinical_kind="joint")(0, 3, names)
    assert isinstance(model, CoxNet) and model.unpenalized == 2
    coxph = ModelFactory("coxph", clinical_kind="joint")(0, 3, names)
    assert isinstance(coxph, CoxPH) and coxph.unpenalized == 2 and coxph.feature_names == names
    with pytest.raises(InputError, match="linear Cox model"):
        ModelFactory("deepsurv", clinical_kind="joint")(0, 3, names)


def test_the_registry_knows_every_kind_and_what_it_can_do() -> None:
    assert FIT_KINDS == ("coxnet", "coxph", "deepsurv", "rsf", "gbsa", "cnn", "clinical")
    assert LATENT_KINDS == ("coxnet", "coxph", "deepsurv", "rsf", "gbsa")
    assert JOINT_KINDS == ("coxnet", "coxph")
    assert set(KINDS) == {*FIT_KINDS, "linear", "fusion"}
    assert {k: KINDS[k].default_pca for k in LATENT_KINDS} == {
        "coxnet": None, "coxph": 16, "deepsurv": 32, "rsf": 16, "gbsa": 16
    }  # fmt: skip
    assert KINDS["cnn"].inputs == "image" and KINDS["clinical"].inputs == "clinical"
    for name, kind in KINDS.items():
        if kind.model is not None:  # a fresh model says its kind, and is linear when the entry says so
            model = ModelFactory(name)(0, 2, ["a", "b"])
            assert model.kind == name and model.is_linear == kind.linear, name
    assert ModelFactory("coxph", clinical_kind="clinical")(0, 2, ["age", "stage"]).feature_names == [
        "age", "stage"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="only restored"):
        ModelFactory("fusion")(0, 2, ["a", "b"])
    with pytest.raises(ValueError, match="unknown model kind"):
        ModelFactory("nope")(0, 2, ["a", "b"])
    with pytest.raises(ValueError, match="unknown model kind 'nope' in bundle"):
        restore_model({"kind": "nope"}, {})


def test_restore_only_kinds_come_back_as_linear_cox(linear_data) -> None:
    from stylesurv.survival.models import LinearCox

    X, y, _ = linear_data
    clinical = ModelFactory("coxph", clinical_kind="clinical")(0, 0, ["age", "stage"])
    clinical.fit(X[:, :2], y)
    config, arrays = clinical.export()
    restored = restore_model(config, arrays)
    assert type(restored) is LinearCox and restored.kind == "clinical" and restored.summary_
    np.testing.assert_allclose(restored.predict(X[:, :2]), clinical.predict(X[:, :2]))
    bare = restore_model({**config, "kind": "linear"}, arrays)
    assert bare.kind == "linear" and bare.is_linear


@pytest.mark.parametrize(("n", "events"), [(4, 3), (5, 4), (12, 5)])
def test_deepsurv_fits_tiny_cohorts_whose_hold_out_would_be_one_patient(n, events) -> None:
    """A pilot of a few patients: the early-stopping hold-out may round to one patient, whose partial
    likelihood torchsurv cannot take (it raised TypeError: len() of a 0-d tensor, for 4 patients with 3
    deaths); it trains without a hold-out instead."""
    rng = np.random.default_rng(0)
    X, time = rng.normal(size=(n, 3)), rng.uniform(1, 100, n)
    y = make_y(time, np.arange(n) < events)
    model = DeepSurv(hidden=(4,), max_epochs=3, weight_decays=(1e-3,), inner_folds=2, seed=0)
    risk = model.fit(X, y).predict(X)
    assert risk.shape == (n,) and np.isfinite(risk).all()
