"""The explain tests' shared fixture: a CoxNet bundle fitted on a small synthetic cohort."""

from pathlib import Path

import pytest

from stylesurv.core.latents import Latents
from tests.explain.toys import synthetic_cohort


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Latents]:
    """(cohort folder with clinical.csv, truth.csv, latents.npz and bundle/, the latents)."""
    from stylesurv.survival.bundle import fit_bundle
    from stylesurv.survival.data import FeatureSpec, join_latents, read_cohort_table
    from stylesurv.survival.registry import ModelFactory

    root = tmp_path_factory.mktemp("cohort")
    latents, _ = synthetic_cohort(root)
    data = join_latents(latents, read_cohort_table(root), "w")
    fit_bundle(
        data, FeatureSpec(space="w"), ModelFactory("coxnet"), root / "bundle", folds=3, n_permutations=0
    )
    return root, latents
