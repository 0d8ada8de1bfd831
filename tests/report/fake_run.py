"""A small but complete run folder built from toy models, for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from stylesurv.core.latents import Latents, save_latents
from stylesurv.explain.config import ExplainConfig
from stylesurv.explain.outputs import explain_run
from stylesurv.survival.validation import CVResults
from tests.explain.toys import region_generator, region_mask

EVIL_ID = "<script>alert(1)</script>"
EVIL_REASON = "<img src=x onerror=alert(2)>"

# Distinct made-up values written over the explain stage's own numbers (the toy generator makes them 0 or 1),
# so that each one can be found in the page.
# Layer group: (share of |d|^2, share of the change energy, face share, face-with-margin share).
FACE_WITH_MARGIN = {"health": 0.913, "random_mean": 0.284, "random_sd": 0.0417, "area": 0.372}
GROUPS = {"coarse": (0.611, 0.527, 0.781, 0.846), "middle": (0.302, 0.358, 0.694, 0.733)}
GROUPS["fine"] = (0.087, 0.115, 0.152, 0.219)
ORTHOGONAL = {
    "n_directions": 3,
    "removed_share": 0.0937,
    "cosine_with_d": 0.9520,
    "face": 0.861,
    "wide": 0.947,
}
REMOVE_NUISANCE = {
    "model": "coxnet",
    "split": "truth.csv split column",
    "n_train": 28,
    "n_test": 12,
    "nuisance_source": "truth",
    "nuisances": ["background_value", "clothing_value"],
    "n_directions": 2,
    "c_index_plain": 0.5831,
    "c_index_removed": 0.6472,
    "r_lp_face_plain": -0.7163,
    "r_lp_face_removed": -0.8348,
}


class GradientBundle:
    """A bundle stand-in whose latent gradient is given."""

    def __init__(self, gradient: np.ndarray) -> None:
        self.gradient = gradient

    def latent_direction(self) -> np.ndarray:
        return self.gradient


def build_run(root: Path, n: int = 40, seed: int = 0) -> Path:
    """RUN/{validate,aligned,embed,fit/coxnet,explain} for n patients (one with a hostile id)."""
    rng = np.random.default_rng(seed)
    gen = region_generator(resolution=16)
    ids = [f"p{i:02d}" for i in range(n - 1)] + [EVIL_ID]
    codes = rng.standard_normal((n, gen.num_ws, gen.w_dim)) * 0.5
    gradient = np.zeros((gen.num_ws, gen.w_dim))
    gradient[0, 1] = -1.0  # the face coordinate of the toy generator
    risk = codes.reshape(n, -1) @ gradient.reshape(-1)
    time = rng.exponential(1000 * np.exp(-risk)) + 1
    event = (rng.uniform(size=n) < 0.7).astype(int)

    run = root / "run"
    (run / "validate").mkdir(parents=True)
    (run / "validate" / "summary.json").write_text(
        json.dumps(
            {
                "summary": {
                    "n": n,
                    "events": int(event.sum()),
                    "censoring_rate": 0.3,
                    "median_followup_days": 812.0,
                }
            }
        )
    )
    aligned = run / "aligned"
    (aligned / "masks").mkdir(parents=True)
    mask = region_mask(16)
    for pid in ids[:-1]:
        photo = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(photo).save(aligned / f"{pid}.png")
        Image.fromarray(mask).save(aligned / "masks" / f"{pid}.png")
    status = ["ok"] * (n - 1) + ["no_face"]
    reason = [""] * (n - 1) + [EVIL_REASON]
    pd.DataFrame({"patient_id": ids, "status": status, "reason": reason}).to_csv(
        aligned / "qc.csv", index=False
    )
    latents = Latents(
        patient_id=np.array(ids),
        wplus=codes.astype(np.float32),
        metrics={"mse": rng.uniform(0, 0.1, n).astype(np.float32)},
    )
    save_latents(run / "embed" / "latents.npz", latents)

    fit = run / "fit" / "coxnet"
    fit.mkdir(parents=True)
    folds = pd.DataFrame(
        {
            "repeat": 0,
            "fold": [0, 1],
            "n_test": n // 2,
            "events_test": int(event.sum()) // 2,
            "harrell_c": [0.63, 0.69],  # mean 0.66, SD 0.042
            "uno_c": [0.62, float("nan")],  # a fold without a Uno's C: the mean of the other
            "auc@365": [0.7, 0.72],
            "ibs": [0.18, 0.2],
        }
    )
    cv = CVResults("coxnet", {}, folds, pd.DataFrame(), [365.0], 1000.0, 0.65, (0.58, 0.72), n_patients=n)
    (fit / "cv_results.json").write_text(cv.to_json())
    oof = pd.DataFrame(
        {
            "patient_id": ids,
            "time": time,
            "event": event,
            "risk": risk + rng.normal(0, 0.3, n),
            "fold": np.arange(n) % 5,
        }
    )
    oof.to_csv(fit / "oof_risk.csv", index=False)

    options = ExplainConfig(
        max_sd=2.0, steps=5, patients=["p01", EVIL_ID], random_directions=2, attribution_patients=10
    )
    explain_run(GradientBundle(gradient), gen, latents, run / "explain", aligned_dir=aligned, options=options)
    set_known_explain_numbers(run / "explain" / "summary.json")
    return run


def set_known_explain_numbers(path: Path) -> None:
    """Overwrite the face-with-margin, layer-group and nuisance-orthogonal numbers of the summary that the
    explain stage wrote with the known values above (in the layout it wrote: a missing key is an error) and
    add a remove-nuisance evaluation."""
    summary = json.loads(path.read_text())
    attribution = summary["attribution"]
    for key, value in FACE_WITH_MARGIN.items():
        assert key in attribution["face_with_margin"], key
        attribution["face_with_margin"][key] = value
    template = attribution["groups"]["coarse"]
    assert {"weight", "energy_share", "health", "face_with_margin"} <= set(template), template
    for name, (weight, energy, face, wide) in GROUPS.items():
        attribution["groups"][name] = {
            **template,
            "weight": weight,
            "energy_share": energy,
            "health": {**template["health"], "face": face},
            "face_with_margin": wide,
        }
    orthogonal = summary["nuisance_orthogonal"]
    for key in ("n_directions", "removed_share", "cosine_with_d"):
        assert key in orthogonal, key
        orthogonal[key] = ORTHOGONAL[key]
    orthogonal["attribution"]["health"]["face"] = ORTHOGONAL["face"]
    orthogonal["attribution"]["face_with_margin"] = ORTHOGONAL["wide"]
    summary["remove_nuisance"] = REMOVE_NUISANCE
    path.write_text(json.dumps(summary))
