"""`stylesurv gan train` and `stylesurv gan export-asset`: thin wrappers around stylesurv.gan.train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylesurv.core.lock import output_lock
from stylesurv.gan.commands import gan_group
from stylesurv.gan.train import TrainConfig

DEFAULTS = TrainConfig()
FIELDS = (
    "cfg", "resume", "weights_only", "kimg", "batch", "aug", "p", "target", "freeze_d", "lr", "gamma",
    "mirror", "snap", "snap_minutes", "tick_kimg", "keep", "seed", "metrics_net", "metrics_n", "threads",
    "device",
)  # fmt: skip
FLAGS = {name: "--" + name.replace("_", "-") for name in FIELDS}  # every field's flag is its name


def train_command(
    data: Annotated[
        Path, typer.Option("--data", help="Aligned folder (qc.csv usable rows) or folder of R x R images.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder; if it holds snapshots the run continues.")],
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", help="Training snapshot (exact continuation) or generator checkpoint (fine-tune)."
        ),
    ] = None,
    weights_only: Annotated[
        bool,
        typer.Option("--weights-only", help="Fine-tune from a training snapshot's weights (new schedule)."),
    ] = DEFAULTS.weights_only,
    kimg: Annotated[
        float, typer.Option("--kimg", help="Train until this many thousand real images.")
    ] = DEFAULTS.kimg,
    batch: Annotated[
        int | None, typer.Option("--batch", help="Global minibatch (default: the preset's).")
    ] = DEFAULTS.batch,
    aug: Annotated[
        str, typer.Option("--aug", help="ada (adaptive p), fixed (constant --p) or none.")
    ] = DEFAULTS.aug,
    p: Annotated[
        float, typer.Option("--p", help="Initial (ada) or constant (fixed) augmentation probability.")
    ] = DEFAULTS.p,
    target: Annotated[
        float, typer.Option("--target", help="ADA target for E[sign(D(real))].")
    ] = DEFAULTS.target,
    freeze_d: Annotated[
        int, typer.Option("--freeze-d", help="Freeze D's first N layers (Freeze-D).")
    ] = DEFAULTS.freeze_d,
    cfg: Annotated[
        str, typer.Option("--cfg", help="Preset: auto, synth32, synth64, paper256, ...")
    ] = DEFAULTS.cfg,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Adam learning rate (default 0.0025).")
    ] = DEFAULTS.lr,
    gamma: Annotated[
        float | None, typer.Option("--gamma", help="R1 weight (default: the preset's).")
    ] = DEFAULTS.gamma,
    mirror: Annotated[
        bool | None, typer.Option("--mirror/--no-mirror", help="x-flipped copies of the data.")
    ] = DEFAULTS.mirror,
    snap: Annotated[
        int, typer.Option("--snap", help="Ticks between snapshots and sample grids.")
    ] = DEFAULTS.snap,
    snap_minutes: Annotated[
        float | None,
        typer.Option("--snap-minutes", help="Also snapshot after this many minutes of wall time."),
    ] = DEFAULTS.snap_minutes,
    tick_kimg: Annotated[
        float, typer.Option("--tick-kimg", help="kimg between progress lines.")
    ] = DEFAULTS.tick_kimg,
    keep: Annotated[int, typer.Option("--keep", help="Snapshots to keep (at least 2).")] = DEFAULTS.keep,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of initialisation, latents, augmentation, data order.")
    ] = DEFAULTS.seed,
    metrics_net: Annotated[
        Path | None,
        typer.Option("--metrics-net", help="TorchScript feature network for FID/KID at snapshots."),
    ] = None,
    metrics_n: Annotated[
        int, typer.Option("--metrics-n", help="Images per side for FID/KID.")
    ] = DEFAULTS.metrics_n,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads per process.")
    ] = DEFAULTS.threads,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu or cuda (default: cuda if available).")
    ] = DEFAULTS.device,
) -> None:
    """Train StyleGAN2-ADA from scratch, fine-tune a checkpoint, or continue a run.

    Example: stylesurv gan train --data aligned --out runs/ft --resume base_generator.safetensors --kimg 2
    --freeze-d 4 --aug ada.  Several processes: torchrun --nproc_per_node 2 -m stylesurv gan train ...
    """
    from stylesurv.core.console import info
    from stylesurv.gan.train import train

    options = TrainConfig(
        data=str(data),
        out=str(out),
        cfg=cfg,
        resume=str(resume) if resume else None,
        weights_only=weights_only,
        kimg=kimg,
        batch=batch,
        aug=aug,
        p=p,
        target=target,
        freeze_d=freeze_d,
        lr=lr,
        gamma=gamma,
        mirror=mirror,
        seed=seed,
        tick_kimg=tick_kimg,
        snap=snap,
        snap_minutes=snap_minutes,
        keep=keep,
        metrics_net=str(metrics_net) if metrics_net else None,
        metrics_n=metrics_n,
        threads=threads,
        device=device,
    )
    with output_lock(out):
        result = train(options, names=FLAGS)
    info(f"trained to {result.nimg / 1000:.1f} kimg; latest snapshot {result.snapshot}")


def export_asset_command(
    snapshot: Annotated[
        Path, typer.Argument(help="Training snapshot (RUN/snapshots/snapshot-*.safetensors).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output prefix: writes PREFIX.safetensors and PREFIX.json.")
    ],
    fp32: Annotated[bool, typer.Option("--fp32", help="Store float32 weights instead of float16.")] = False,
    grid: Annotated[Path | None, typer.Option("--grid", help="Also write a sample grid PNG here.")] = None,
) -> None:
    """Export a snapshot's G_ema and D as a generator checkpoint plus a JSON with config, command and stats.

    Example: stylesurv gan export-asset runs/base64/snapshots/snapshot-000400000.safetensors
    --out src/stylesurv/assets/base_generator --grid docs/base_generator_samples.png
    """
    from stylesurv.core.console import info
    from stylesurv.gan.train import export_asset

    paths = export_asset(snapshot, out, half=not fp32, grid=grid)
    info("wrote " + ", ".join(str(p) for p in paths))


def register(app: typer.Typer) -> None:
    """Add `gan train` and `gan export-asset`."""
    gan = gan_group(app)
    gan.command("train")(train_command)
    gan.command("export-asset")(export_asset_command)
