"""Nested CV: honest on noise, optimistic when leaky, near the oracle on the synthetic world's factors."""

import json

import numpy as np
import pandas as pd
import pytest

from stylesurv.cohort.simulate import SurvivalModel as WorldModel
from stylesurv.cohort.simulate import sample_factors, simulate_survival
from stylesurv.survival.data import FeatureSpec, SurvivalData
from stylesurv.survival.metrics import harrell_c
from stylesurv.survival.registry import ModelFactory
from stylesurv.survival.validation import CVResults, cross_validate, permutation_null

from .conftest import weibull_ph

QUICK_COXNET = ModelFactory("coxnet", options={"n_alphas": 8, "alpha_min_ratio": 0.1, "inner_folds": 3})


def _noise(n: int, p: int, seed: int) -> SurvivalData:
    rng = np.random.default_rng(seed)
    y = weibull_ph(n, np.zeros(n), seed=seed + 1)
    return SurvivalData(np.arange(n).astype(str), y["time"], y["event"], codes=rng.normal(size=(n, p)))


def test_noise_features_stay_within_the_permutation_null_and_a_leaky_pipeline_does_not() -> None:
    data = _noise(150, 300, seed=0)
    spec = FeatureSpec(space="w")
    honest = cross_validate(data, spec, QUICK_COXNET, "coxnet", folds=3, n_bootstrap=200, n_permutations=8,
                            progress=False)  # fmt: skip
    null = np.array(honest.permutation["null"])
    observed = honest.permutation["observed"]
    assert null.min() - 0.02 <= observed <= null.max() + 0.02
    assert honest.permutation["p_value"] > 0.05

    # The classic leak: choose the 10 features most associated with outcome on ALL patients (as a
    # supervised PCA or feature screen before CV would), then cross-validate only the model.
    scores = [
        abs(harrell_c(data.time, data.event, data.codes[:, j]) - 0.5) for j in range(data.codes.shape[1])
    ]
    leaky_data = SurvivalData(
        data.patient_id, data.time, data.event, codes=data.codes[:, np.argsort(scores)[-10:]]
    )
    leaky = cross_validate(leaky_data, spec, QUICK_COXNET, "leaky", folds=3, n_bootstrap=200, progress=False)
    assert leaky.oof_harrell > null.max() + 0.03
    assert leaky.oof_harrell > honest.oof_harrell + 0.05


def test_true_factors_reach_the_oracle_c_index() -> None:
    # The synthetic world's hidden factors and Weibull PH outcomes (stylesurv.cohort.simulate)
    factors = sample_factors("cohort", 1000, seed=5)
    world = WorldModel()
    lp = world.linear_predictor(factors)
    draw = simulate_survival(lp, world, seed=5)
    columns = ["cachexia", "pallor", "periorbital", "age", "stage"]
    data = SurvivalData(factors["patient_id"], draw.time, draw.event, codes=factors[columns].to_numpy(float))
    oracle = harrell_c(draw.time, draw.event, lp)
    factory = ModelFactory("coxph", options={"penalizers": (1e-4,)})
    results = cross_validate(
        data, FeatureSpec(space="w"), factory, "coxph", folds=5, n_bootstrap=100, progress=False
    )
    assert results.oof_harrell == pytest.approx(oracle, abs=0.01)
    assert results.mean("harrell_c") == pytest.approx(oracle, abs=0.02)


def test_results_render_as_summary_json_and_table(linear_data) -> None:
    X, y, _ = linear_data
    clinical = pd.DataFrame({"grade": np.where(X[:, 2] > 0, "high", "low")})
    data = SurvivalData(
        np.arange(len(y)).astype(str), y["time"], y["event"], codes=X[:, :2], clinical=clinical
    )
    spec = FeatureSpec(space="w", clinical=("grade",))
    factory = ModelFactory("coxnet", clinical_kind="fusion", options={"n_alphas": 8, "inner_folds": 2})
    results = cross_validate(data, spec, factory, "coxnet+clinical",
                             folds=3, repeats=2, n_bootstrap=100, progress=False)  # fmt: skip
    assert len(results.folds) == 6 and len(results.oof) == 2 * len(y)
    assert set(results.oof.groupby("repeat")["patient_id"].nunique()) == {
        len(y)
    }  # each patient once per repeat
    summary = results.summary
    assert list(summary.index[:2]) == ["harrell_c", "uno_c"] and "ibs" in summary.index
    assert summary.loc["harrell_c", "mean"] > 0.7 and 0 < summary.loc["ibs", "mean"] < 0.25
    parsed = json.loads(results.to_json())
    assert parsed["summary"][0]["metric"] == "harrell_c" and len(parsed["folds"]) == 6
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(results.table())
    assert "oof_harrell_c" in console.export_text()
    # a metric undefined on every fold (e.g. Uno's C when all times tie) is said so, not a bare "nan"
    results.folds["uno_c"] = np.nan
    console.print(results.table())
    text = console.export_text()
    assert "n/a (undefined on these folds)" in text and " nan " not in text


def test_permutation_null_is_reproducible() -> None:
    data = _noise(60, 5, seed=3)
    factory = ModelFactory("coxph", options={"penalizers": (0.1,)})
    a = permutation_null(
        data, FeatureSpec(space="w"), factory, folds=3, seed=1, n_permutations=3, progress=False
    )
    b = permutation_null(
        data, FeatureSpec(space="w"), factory, folds=3, seed=1, n_permutations=3, progress=False
    )
    np.testing.assert_array_equal(a, b)
    assert np.all(np.abs(a - 0.5) < 0.2)


def test_results_round_trip_through_their_json() -> None:
    data = _noise(60, 4, seed=7)
    factory = ModelFactory("coxph", options={"penalizers": (0.1,)})
    results = cross_validate(data, FeatureSpec(space="w"), factory, "coxph", folds=3, repeats=2,
                             auc_times=np.array([0.3, 0.7]), n_bootstrap=50, n_permutations=2,
                             progress=False)  # fmt: skip
    text = results.to_json()
    again = CVResults.from_json(json.loads(text), results.oof)
    assert again == results and again.to_json() == text
    assert list(again.folds.columns) == list(results.folds.columns)
    pd.testing.assert_frame_equal(again.folds, results.folds)
    pd.testing.assert_frame_equal(again.summary, results.summary)
    bare = CVResults.from_json(text)  # the JSON alone: everything but the out-of-fold risks
    assert bare.to_json() == text and len(bare.oof) == 0 and bare != results
    head = results.headline()
    assert head == again.headline()
    assert head["harrell_c"] == results.mean("harrell_c") and head["oof_harrell_c"] == results.oof_harrell
    assert head["oof_harrell_ci95"] == list(results.oof_ci)
    assert head["permutation_p"] == results.permutation["p_value"]
    assert set(head) == {"harrell_c", "uno_c", "ibs", "oof_harrell_c", "oof_harrell_ci95", "permutation_p"}


def test_results_json_keeps_missing_metrics_and_full_precision() -> None:
    folds = pd.DataFrame({
        "repeat": [0, 0], "fold": [0, 1], "n_test": [5, 5], "events_test": [2, 3],
        "harrell_c": [0.1 + 0.2, 2 / 3], "uno_c": [np.nan, 0.5], "auc@1": [np.nan, np.nan],
        "ibs": [0.123456789012345678, 0.2], "params": ['{"penalizer": 0.1}'] * 2,
    })  # fmt: skip
    oof = pd.DataFrame({"patient_id": ["a", "b"], "time": [1.0, 2.0], "event": [1, 0], "repeat": [0, 0],
                        "fold": [0, 1], "risk": [0.3, -0.1]})  # fmt: skip
    results = CVResults("m", {"space": "w"}, folds, oof, [1.0], 2.5, 0.6, (0.5, 0.7), n_patients=2)
    again = CVResults.from_json(json.loads(results.to_json()), oof)
    assert again == results and again.to_json() == results.to_json()
    pd.testing.assert_frame_equal(again.folds, folds)  # 0.1 + 0.2 and 2/3 exactly, NaN back as NaN
    head = results.headline()
    assert head["uno_c"] == 0.5 and head["permutation_p"] is None
    assert json.loads(json.dumps(head)) == head  # plain JSON
