"""`stylesurv embed` and `stylesurv encoder train`: parse, call the library, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylesurv.core.errors import InputError
from stylesurv.core.lock import output_lock

encoder_app = typer.Typer(help="Train the image -> W+ encoder that starts embedding.", no_args_is_help=True)


def _device(name: str | None) -> str:
    import torch

    if name:
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_generator(path: Path, device: str):  # noqa: ANN202 - returns the gan package's Generator
    if not path.is_file():
        raise InputError(f"{path}: generator checkpoint not found")
    from stylesurv.gan.checkpoint import load_generator

    return load_generator(path).to(device).eval()


@encoder_app.command("train")
def encoder_train(
    generator: Annotated[
        Path, typer.Option("--generator", help="Generator checkpoint (.safetensors, .pkl, .pt).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for encoder.safetensors and encoder.json.")],
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    batch: Annotated[int, typer.Option(help="Generated images per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Adam learning rate (cosine-decayed).")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, sampling and augmentation.")] = 0,
    photos: Annotated[
        Path | None,
        typer.Option(help="Optional aligned folder of real photos to add a reconstruction loss on."),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Encoder to warm-start from (one for a related generator); use a lower --lr, e.g. 2e-4."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda if available).")] = None,
) -> None:
    """Train an encoder on images sampled from the generator (known codes), optionally plus real photos.

    Example: stylesurv encoder train --generator run/finetune/generator.safetensors --out run/encoder
    """
    import torch

    from stylesurv.core.console import info, make_progress
    from stylesurv.core.hashing import sha256_file
    from stylesurv.invert.embed import load_batch, usable_patients
    from stylesurv.invert.encoder import (
        EncoderTrainConfig,
        encoder_identity,
        load_encoder,
        save_encoder,
        train_encoder,
    )

    if steps < 1 or batch < 1:
        raise InputError("--steps and --batch must be at least 1")
    the_device = _device(device)
    G = _load_generator(generator, the_device)
    real = None
    if photos is not None:
        real, _, _ = load_batch(photos, usable_patients(photos), G.img_resolution, use_masks=False)
        info(f"adding a reconstruction loss on {len(real)} real photos from {photos}")
    config = EncoderTrainConfig(steps=steps, batch=batch, lr=lr, seed=seed)
    start = None if init is None else load_encoder(init)
    with make_progress() as progress:
        task = progress.add_task("training encoder", total=steps)
        encoder = train_encoder(
            G, config, real, on_step=lambda _step, _terms: progress.advance(task), init=start
        )
    save_encoder(
        out,
        encoder.cpu(),
        {
            "generator_sha256": sha256_file(generator),
            "train": config.__dict__,
            "real_photos": None if photos is None else str(photos),
            "init": None if init is None else {"path": str(init), "sha256": encoder_identity(init)},
            "torch": torch.__version__,
        },
    )
    info(f"[green]✓[/green] encoder written to {out}")


def embed(
    aligned_dir: Annotated[Path, typer.Argument(help="Aligned folder (<patient_id>.png, qc.csv, masks/).")],
    generator: Annotated[Path, typer.Option("--generator", help="Generator checkpoint.")],
    out: Annotated[Path, typer.Option("--out", help="Latents file to write (.npz).")],
    encoder: Annotated[
        Path | None, typer.Option("--encoder", help="Encoder folder (encoder train) for the init.")
    ] = None,
    space: Annotated[
        str, typer.Option("--space", help="w (one code per image) or wplus (one per layer).")
    ] = "wplus",
    steps: Annotated[
        int, typer.Option("--steps", help="Refinement steps after the encoder (or from w_avg).")
    ] = 100,
    batch: Annotated[
        int, typer.Option("--batch", help="Images per batch and per resumable chunk; 0 = auto.")
    ] = 0,
    seed: Annotated[
        int, typer.Option("--seed", help="Run seed (each image's seed derives from it and its id).")
    ] = 0,
    save_reconstructions: Annotated[
        Path | None,
        typer.Option(
            "--save-reconstructions", help="Folder to write <patient_id>.png renderings of the codes to."
        ),
    ] = None,
    mse_weight: Annotated[float, typer.Option(help="Weight of the multi-scale pixel MSE.")] = 1.0,
    l1_weight: Annotated[float, typer.Option(help="Weight of the multi-scale pixel L1.")] = 0.0,
    ssim_weight: Annotated[float, typer.Option(help="Weight of 1 - MS-SSIM (SSIM below 161 px).")] = 1.0,
    discriminator: Annotated[
        Path | None, typer.Option("--discriminator", help="Discriminator checkpoint for the feature loss.")
    ] = None,
    disc_weight: Annotated[
        float, typer.Option(help="Weight of the discriminator-feature loss (with --discriminator).")
    ] = 0.0,
    vgg16: Annotated[
        Path | None, typer.Option("--vgg16", help="torchvision vgg16 state dict (.pth) for LPIPS.")
    ] = None,
    lpips: Annotated[
        Path | None, typer.Option("--lpips", help="LPIPS v0.1 linear weights (lpips' vgg.pth).")
    ] = None,
    lpips_weight: Annotated[
        float, typer.Option(help="Weight of LPIPS-VGG16 (with --vgg16 and --lpips).")
    ] = 0.0,
    masks: Annotated[
        bool, typer.Option("--masks/--no-masks", help="Focus the loss on the face (masks/).")
    ] = True,
    background_weight: Annotated[float, typer.Option(help="Loss weight outside the face mask.")] = 0.1,
    optimize_noise: Annotated[
        bool, typer.Option("--optimize-noise", help="Also fit per-image noise maps.")
    ] = False,
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda (default: cuda if available; torchrun: per rank).")
    ] = None,
) -> None:
    """Embed aligned photos into W or W+: encoder init, batched refinement, per-patient metrics.

    Resumable (finished chunks are kept beside the output); under `torchrun --nproc_per_node K` the chunks
    are shared among K processes and rank 0 writes the file.

    Example: stylesurv embed run/aligned --generator run/finetune/generator.safetensors
    --encoder run/encoder --space wplus --steps 100 --out run/embed/latents.npz
    """
    from stylesurv.core.console import info
    from stylesurv.core.hashing import sha256_file
    from stylesurv.gan.dist import close_world, init_world
    from stylesurv.invert.embed import EmbedConfig, Networks, auto_batch, embed_folder
    from stylesurv.invert.encoder import encoder_identity, load_encoder
    from stylesurv.invert.losses import LossWeights, LpipsVgg16
    from stylesurv.invert.project import SPACES, ProjectConfig

    if space not in SPACES:
        raise InputError(f"--space must be one of {', '.join(SPACES)}, not {space!r}")
    if steps < 0 or batch < 0:
        raise InputError("--steps and --batch must not be negative")
    if (vgg16 is None) != (lpips is None):
        raise InputError("LPIPS needs both --vgg16 and --lpips")
    world = init_world(device)
    try:
        G = _load_generator(generator, str(world.device))
        networks = Networks(generator=G, generator_sha256=sha256_file(generator))
        if encoder is not None:
            networks.encoder = load_encoder(encoder)
            networks.encoder_sha256 = encoder_identity(encoder)
        if discriminator is not None:
            from stylesurv.gan.checkpoint import load_discriminator

            networks.discriminator = load_discriminator(discriminator)
            networks.discriminator_sha256 = sha256_file(discriminator)
        if vgg16 is not None and lpips is not None:
            networks.lpips = LpipsVgg16(vgg16, lpips)
            networks.lpips_sha256 = sha256_file(vgg16) + ":" + sha256_file(lpips)
        weights = LossWeights(
            mse=mse_weight, l1=l1_weight, ssim=ssim_weight, disc=disc_weight, lpips=lpips_weight,
            background_weight=background_weight,
        )  # fmt: skip
        config = EmbedConfig(
            project=ProjectConfig(space=space, steps=steps, optimize_noise=optimize_noise),
            losses=weights,
            batch=batch or auto_batch(G, weights),
            seed=seed,
            use_masks=masks,
        )
        with output_lock(out):
            latents = embed_folder(aligned_dir, networks, out, config, save_reconstructions, world)
        if latents is not None:
            psnr = latents.metrics["psnr"]
            info(f"[green]✓[/green] {len(latents)} patients embedded in {space}; PSNR {psnr.mean():.2f} dB")
            info(f"latents written to {out}")
    finally:
        close_world()


def register(app: typer.Typer) -> None:
    """Add `embed` and the `encoder` sub-app to the main app."""
    app.command("embed")(embed)
    app.add_typer(encoder_app, name="encoder")
