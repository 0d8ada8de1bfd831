"""A small but complete run folder built from toy models, for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from stylesurv.explain.pipeline import ExplainOptions, explain_run
from stylesurv.invert.latents import Latents, save_latents
from tests.explain.toys import region_generator, region_mask

EVIL_ID = "<script>alert(1)</script>"
EVIL_REASON = "<img src=x onerror=alert(2)>"
EVIL_METRIC = "<b onmouseover=alert(3)>c</b>"


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
    cv = {
        "model": "coxnet",
        "summary": [
            {"metric": "harrell_c", "mean": 0.66, "sd": 0.03, "ci_low": None, "ci_high": None},
            {"metric": "oof_harrell_c", "mean": 0.65, "sd": None, "ci_low": 0.58, "ci_high": 0.72},
            {"metric": EVIL_METRIC, "mean": 0.5, "sd": 0.1, "ci_low": None, "ci_high": None},
        ],
    }
    (fit / "cv_results.json").write_text(json.dumps(cv))
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

    options = ExplainOptions(
        max_sd=2.0, steps=5, patients=["p01", EVIL_ID], n_random=2, attribution_patients=10
    )
    explain_run(GradientBundle(gradient), gen, latents, run / "explain", aligned_dir=aligned, options=options)
    return run
