"""Counterfactual codes of a finished run: its patients re-embedded with recoloured background and clothes."""

from __future__ import annotations

from pathlib import Path

from stylesurv.core.latents import Latents
from stylesurv.studies.counterfactual import embed_counterfactuals


def embed_run_counterfactuals(
    run_dir: str | Path, patient_ids: list[str] | None = None, max_patients: int = 200, seed: int = 0
) -> Latents:
    """:func:`embed_counterfactuals` for a finished run's patients (default: all of its codes), with the run's
    networks and embed settings; the work lives in ``RUN/counterfactual/``."""
    from stylesurv.app.pipeline import embed_settings, read_run
    from stylesurv.app.predict import networks_of
    from stylesurv.core.latents import load_latents

    run = read_run(run_dir)
    ids = patient_ids if patient_ids is not None else load_latents(run.latents).patient_id.tolist()
    return embed_counterfactuals(
        run.aligned, networks_of(run), embed_settings(run.config), Path(run_dir) / "counterfactual", ids,
        max_patients, seed,
    )  # fmt: skip
