"""A tiny finished run folder for the predict tests: synthetic cohort, aligned, embedded, two Cox bundles.

The cohort is the synthetic world at 32 px with its landmarks.csv (dlib does not find 32 px faces); the
generator and encoder are small untrained networks; the embed stage is the pipeline's own, so predict is
checked against what `stylesurv run` writes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from stylesurv.app.config import FIT_DEFAULTS, RunConfig
from stylesurv.app.pipeline import _embed
from stylesurv.cohort.synthetic import make_world, write_world
from stylesurv.core.latents import load_latents
from stylesurv.core.rundir import RunDir
from stylesurv.faces.folder import AlignConfig, align_cohort
from stylesurv.gan.checkpoint import save_networks
from stylesurv.gan.networks import Generator
from stylesurv.invert.embed import EmbedConfig
from stylesurv.invert.encoder import new_encoder, save_encoder
from stylesurv.invert.project import ProjectConfig
from stylesurv.survival.bundle import fit_bundle
from stylesurv.survival.data import FeatureSpec, join_latents, read_cohort_table
from stylesurv.survival.registry import ModelFactory

N_PATIENTS = 60


@dataclass(frozen=True)
class TinyRun:
    root: Path  # the run folder
    cohort: Path  # the synthetic cohort folder (photos/, clinical.csv, landmarks.csv)

    @property
    def landmarks(self) -> Path:
        return self.cohort / "landmarks.csv"

    def photo(self, patient_id: str) -> Path:
        return self.cohort / "photos" / f"{patient_id}.png"


def build_run(root: Path, seed: int = 7, resolution: int = 32) -> TinyRun:
    """RUN/{manifest.json, aligned, embed, fit/coxnet, fit/coxph} for a 60-patient synthetic cohort."""
    cohort = write_world(
        make_world("cohort", N_PATIENTS, seed=3), root / "cohort", resolution, fmt="png", workers=1
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(
            z_dim=32, c_dim=0, w_dim=32, img_resolution=resolution, img_channels=3,
            mapping_kwargs=dict(num_layers=2),
            synthesis_kwargs=dict(channel_base=16 * resolution, channel_max=32),
        ).eval()  # fmt: skip
    generator_path = root / "generator.safetensors"
    save_networks(generator_path, G_ema=generator)
    encoder_dir = root / "encoder"
    save_encoder(
        encoder_dir, new_encoder(generator, seed=seed, channel_base=256, channel_max=32, hidden=64), {}
    )

    run = RunDir(root / "run")
    config = RunConfig(
        cohort=str(cohort),
        generator=str(generator_path),
        encoder=str(encoder_dir),
        encoder_steps=0,
        out=str(run.root),
        seed=seed,
        landmarks=str(cohort / "landmarks.csv"),
        align=AlignConfig(resolution=resolution),
        embed=EmbedConfig(project=ProjectConfig(space="wplus", steps=8), batch=16),
        fit=dataclasses.replace(FIT_DEFAULTS, models=("coxnet", "coxph"), folds=3, permutations=0),
    )
    landmarks = cohort / "landmarks.csv"
    aligned = run.run_stage(
        "aligned",
        {},
        {"cohort": cohort, "landmarks": landmarks},
        lambda out: align_cohort(cohort, out, AlignConfig(resolution=resolution), landmarks, workers=1),
    ).path
    embed_inputs = {"aligned": aligned, "generator": generator_path, "encoder": encoder_dir}
    embed_cfg = dataclasses.replace(config.embed, seed=seed).to_dict()
    latents = (
        run.run_stage(
            "embed", embed_cfg, embed_inputs, _embed(aligned, generator_path, encoder_dir, config)
        ).path
        / "latents.npz"
    )
    data = join_latents(load_latents(latents), read_cohort_table(cohort), "wplus")
    # a fixed small penalty keeps coefficients non-zero: an untrained generator's codes carry no signal
    coxnet = ModelFactory("coxnet", options={"alphas": [0.02]})
    fits = {
        "coxnet": lambda out: fit_bundle(
            data, FeatureSpec(space="wplus", pca=8), coxnet, out, folds=3, seed=seed
        ),
        "coxph": lambda out: fit_bundle(
            data, FeatureSpec(space="wplus", pca=4), ModelFactory("coxph"), out, folds=3
        ),
    }
    for name, fit in fits.items():
        run.run_stage(f"fit/{name}", {}, {"latents": latents}, fit)
    run.update_manifest(config=config.to_dict(), seed=config.seed)
    return TinyRun(run.root, cohort)
