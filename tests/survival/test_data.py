"""Feature pipeline: fitted on training rows only, linear in the code, serialisable; joining the cohort."""

import numpy as np
import pandas as pd
import pytest

from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.survival.data import (
    FeaturePipeline,
    FeatureSpec,
    SurvivalData,
    join_latents,
    layer_group_bounds,
)


def _data(n: int = 60, wplus: bool = True, seed: int = 0) -> SurvivalData:
    rng = np.random.default_rng(seed)
    codes = (
        rng.normal(size=(n, 5, 6)) * rng.uniform(0.5, 3, size=(1, 5, 6)) if wplus else rng.normal(size=(n, 6))
    )
    clinical = pd.DataFrame(
        {
            "age": rng.normal(60, 10, n).round(),
            "stage": rng.choice(["I", "II", "III"], n),
            "sex": rng.integers(0, 2, n),
        }
    )
    return SurvivalData(
        np.arange(n).astype(str), rng.uniform(1, 100, n), rng.uniform(size=n) < 0.5, codes, clinical
    )


SPECS = [
    FeatureSpec(space="w"),
    FeatureSpec(space="w", pca=3),
    FeatureSpec(space="wplus", wplus_reduce="flatten", pca=7),
    FeatureSpec(space="wplus", wplus_reduce="groups", layer_groups=2),
    FeatureSpec(space="wplus", wplus_reduce="groups", layer_groups=3, pca=4, clinical=("age", "stage")),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.space}-{s.wplus_reduce}-{s.pca}-{len(s.clinical)}")
def test_latent_gradient_is_the_derivative_of_the_linear_score(spec: FeatureSpec) -> None:
    data = _data(wplus=spec.space == "wplus")
    pipe = FeaturePipeline(spec).fit(data)
    coef = np.random.default_rng(1).normal(size=pipe.n_latent_features)
    grad = pipe.latent_gradient(coef)
    assert grad.shape == data.codes.shape[1:]
    code = data.codes[:1]
    # the score is affine in the code, so a finite difference in any direction is exact up to rounding
    step = np.random.default_rng(2).normal(size=code.shape)
    change = pipe.latent_features(code + step) @ coef - pipe.latent_features(code) @ coef
    assert change[0] == pytest.approx(float((grad * step[0]).sum()), rel=1e-8)


def test_features_are_standardised_on_the_training_fold_only() -> None:
    data = _data()
    train, test = data.subset(np.arange(40)), data.subset(np.arange(40, 60))
    pipe = FeaturePipeline(FeatureSpec(space="wplus", pca=5, clinical=("age",))).fit(train)
    X_train = pipe.transform(train)
    np.testing.assert_allclose(X_train.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(X_train.std(axis=0, ddof=1), 1, atol=1e-10)
    # a test patient's features do not depend on the other test patients
    np.testing.assert_allclose(pipe.transform(test)[:3], pipe.transform(test.subset(np.arange(3))))


def test_clinical_encoding_imputation_and_unseen_levels() -> None:
    data = _data()
    pipe = FeaturePipeline(FeatureSpec(space="none", clinical=("age", "stage"))).fit(data)
    reference = pipe.categorical["stage"][0]  # most frequent level is the reference
    assert pipe.feature_names == ["age"] + [f"stage={lv}" for lv in pipe.categorical["stage"][1:]]
    new = SurvivalData(["a", "b"], [1.0, 2.0], [True, False], clinical=pd.DataFrame(
        {"age": [np.nan, 70.0], "stage": ["IV", reference]}))  # fmt: skip
    X = pipe.transform(new)
    median, mean, sd = pipe.numeric["age"]
    assert X[0, 0] == pytest.approx((median - mean) / sd)  # missing age -> training median
    np.testing.assert_array_equal(X[:, 1:], 0)  # unseen and reference levels -> all indicators 0


def test_pipeline_round_trips_through_export() -> None:
    data = _data()
    pipe = FeaturePipeline(SPECS[-1]).fit(data)
    config, arrays = pipe.export()
    restored = FeaturePipeline.restore(config, arrays)
    np.testing.assert_array_equal(restored.transform(data), pipe.transform(data))


def test_layer_groups_cover_every_layer_once() -> None:
    assert layer_group_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert layer_group_bounds(2, 5) == [(0, 1), (1, 2)]


def test_join_latents_keeps_the_intersection_and_checks_columns() -> None:
    ids = [f"p{i}" for i in range(12)]
    latents = Latents(patient_id=ids[:11] + ["extra"], w=np.random.default_rng(0).normal(size=(12, 4)))
    table = pd.DataFrame({"patient_id": ids, "time": np.arange(1, 13.0), "event": [1, 0] * 6, "age": 50.0})
    data = join_latents(latents, table, "w", ("age",))
    assert data.patient_id.tolist() == ids[:11]
    np.testing.assert_array_equal(data.codes, latents.w[:11])
    with pytest.raises(InputError, match="stage"):
        join_latents(latents, table, "w", ("stage",))
    with pytest.raises(InputError, match="wplus"):
        join_latents(latents, table, "wplus")
