"""Survival stage benchmark: full nested CV time of CoxNet and DeepSurv on 1,000 patients x 512 features,
and each model's C-index on the synthetic world's true factors and on pure noise.

Run: ``python bench/bench_survival.py [--json PATH]`` (2 CPU threads; a few minutes).  Wall time is the
measure; CPU time (all threads) is printed beside it because a shared machine inflates wall time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from benchjson import add_json_option, slug, write_json
from rich.console import Console
from rich.table import Table

from stylesurv.cohort.simulate import SurvivalModel as WorldModel
from stylesurv.cohort.simulate import sample_factors, simulate_survival
from stylesurv.survival.data import FeatureSpec, SurvivalData
from stylesurv.survival.metrics import harrell_c
from stylesurv.survival.registry import ModelFactory
from stylesurv.survival.validation import cross_validate

N_PATIENTS, N_FEATURES, FOLDS = 1000, 512, 5
FACTORS = ["cachexia", "pallor", "periorbital", "age", "stage"]


def _world(seed: int) -> tuple[dict[str, SurvivalData], float]:
    """Three feature sets with the same outcomes of one synthetic cohort, and the oracle C-index.

    "true factors": the 5 generating factors themselves.  "factors in 512-d": those factors mixed into 512
    dimensions by a random orthonormal map plus unit noise per dimension, as a latent code would carry them.
    "noise 512-d": 512 features independent of everything.
    """
    factors = sample_factors("cohort", N_PATIENTS, seed=seed)
    world = WorldModel()
    lp = world.linear_predictor(factors)
    draw = simulate_survival(lp, world, seed=seed)
    rng = np.random.default_rng(seed)
    true = factors[FACTORS].to_numpy(float)
    true = (true - true.mean(axis=0)) / true.std(axis=0)
    basis = np.linalg.qr(rng.normal(size=(N_FEATURES, len(FACTORS))))[0].T  # [5, 512] orthonormal rows
    ids = factors["patient_id"].to_numpy()
    sets = {
        "true factors": true,
        "factors in 512-d": 3.0 * true @ basis + rng.normal(size=(N_PATIENTS, N_FEATURES)),
        "noise 512-d": rng.normal(size=(N_PATIENTS, N_FEATURES)),
    }
    data = {name: SurvivalData(ids, draw.time, draw.event, codes=codes) for name, codes in sets.items()}
    return data, harrell_c(draw.time, draw.event, lp)


def _row(metric: str, value: float, unit: str, note: str) -> dict:
    return {"bench": "survival", "metric": metric, "value": value, "unit": unit, "note": note}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    sets, oracle = _world(seed=11)
    plans = {"coxnet": ModelFactory("coxnet"), "deepsurv": ModelFactory("deepsurv")}
    rows: list[dict] = []
    # flat JSON results: <model>_<feature set>.nested_cv_wall_s / .nested_cv_cpu_s / .oof_harrell_c /
    # .fold_mean_harrell_c, and oracle.harrell_c
    found: dict = {}
    for name, factory in plans.items():
        for label, data in sets.items():
            spec = FeatureSpec(space="w")
            start, cpu_start = time.perf_counter(), time.process_time()
            results = cross_validate(data, spec, factory, name, folds=FOLDS, n_bootstrap=200, progress=False)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            note = f"{N_PATIENTS}x{data.codes.shape[1]}, {FOLDS} outer folds; CPU {cpu:.1f} s"
            rows.append(_row(f"{name} nested CV wall time ({label})", seconds, "s", note))
            reference = "chance 0.5" if label.startswith("noise") else f"oracle {oracle:.3f}"
            note = f"pooled out-of-fold; fold mean {results.mean('harrell_c'):.3f}; {reference}"
            rows.append(_row(f"{name} C-index ({label})", results.oof_harrell, "C", note))
            key = f"{name}_{slug(label)}"
            found[f"{key}.nested_cv_wall_s"], found[f"{key}.nested_cv_cpu_s"] = seconds, cpu
            found[f"{key}.oof_harrell_c"] = results.oof_harrell
            found[f"{key}.fold_mean_harrell_c"] = results.mean("harrell_c")
    rows.append(_row("oracle C-index", oracle, "C", "Harrell's C of the true linear predictor"))
    found["oracle.harrell_c"] = oracle
    table = Table(title="survival benchmark")
    for col in ("metric", "value", "unit", "note"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["metric"], f"{row['value']:.3f}", row["unit"], row["note"])
    Console().print(table)
    write_json(args.json, "survival", found, argv)
    return rows


if __name__ == "__main__":
    main()
