"""`stylesurv gan convert | info | sample`: thin wrappers around stylesurv.gan.checkpoint."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stylesurv.core.errors import InputError

if TYPE_CHECKING:
    import numpy as np


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (ranges inclusive, as in the reference scripts)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise InputError(f"--seeds {text!r}: use numbers and inclusive ranges, e.g. 0-7 or 1,5,10-12")
        start, end = int(match[1]), int(match[2] or match[1])
        if end < start:
            raise InputError(f"--seeds {text!r}: range {part} runs backwards")
        seeds.extend(range(start, end + 1))
    return seeds


def convert_command(
    src: Annotated[
        Path, typer.Argument(help="NVIDIA .pkl, rosinality .pt or native .safetensors checkpoint.")
    ],
    dst: Annotated[Path, typer.Argument(help="Native .safetensors file to write.")],
) -> None:
    """Convert a checkpoint to the native .safetensors format (no code from SRC is run).

    Example: stylesurv gan convert stylegan2-ffhq-1024x1024.pkl ffhq.safetensors
    """
    from stylesurv.core.console import info
    from stylesurv.core.hashing import sha256_file
    from stylesurv.gan.checkpoint import convert_checkpoint

    if dst.is_dir():
        example = dst / (src.stem + ".safetensors")
        raise InputError(f"{dst} is a folder; give the file to write, e.g. {example}")
    names = convert_checkpoint(src, dst)
    info(f"wrote {dst} ({', '.join(names)}; sha256 {sha256_file(dst)[:16]})")


def info_command(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint in any supported format.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full information as JSON.")] = False,
) -> None:
    """Show a checkpoint's format, networks, configs, parameter counts and sha256.

    Example: stylesurv gan info ffhq.safetensors
    """
    from stylesurv.gan.checkpoint import checkpoint_info

    details = checkpoint_info(ckpt)
    if as_json:
        typer.echo(json.dumps(details, indent=2, sort_keys=True))
        return
    typer.echo(f"{details['path']}\n  format  {details['format']}\n  sha256  {details['sha256']}")
    for name, net in details["networks"].items():
        typer.echo(f"  {name}: {net['class']}, {net['parameters'] / 1e6:.2f} M parameters")
        typer.echo(f"    config {json.dumps(net['config'], sort_keys=True)}")
    if details["extra"]:
        typer.echo(f"  extra   {json.dumps(details['extra'], sort_keys=True)}")


def sample_command(
    ckpt: Annotated[Path, typer.Argument(help="Generator checkpoint in any supported format.")],
    outdir: Annotated[Path, typer.Option("--outdir", help="Folder for seedNNNN.png files and grid.png.")],
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds, e.g. 0-7 or 1,5,10-12.")] = "0-7",
    trunc: Annotated[float, typer.Option("--trunc", help="Truncation psi (1 = none).")] = 1.0,
    trunc_cutoff: Annotated[
        int | None, typer.Option("--trunc-cutoff", help="Truncate only the first N ws (default: all).")
    ] = None,
    noise_mode: Annotated[str, typer.Option("--noise-mode", help="const, random or none.")] = "const",
    which: Annotated[str, typer.Option("--which", help="Network to use: G_ema or G.")] = "G_ema",
    class_idx: Annotated[
        int | None, typer.Option("--class", help="Class index for a conditional generator.")
    ] = None,
    grid: Annotated[bool, typer.Option("--grid/--no-grid", help="Also write grid.png.")] = True,
) -> None:
    """Generate one image per seed with z = numpy.random.RandomState(seed).randn(1, z_dim).

    Same seed and checkpoint give the same image as NVIDIA's generate.py.
    Example: stylesurv gan sample ffhq.safetensors --seeds 0-7 --trunc 0.7 --outdir samples
    """
    import numpy as np
    import torch

    from stylesurv.core.atomic import write_bytes_atomic
    from stylesurv.core.console import info, track
    from stylesurv.gan.checkpoint import load_generator

    if noise_mode not in ("const", "random", "none"):
        raise InputError(f"--noise-mode {noise_mode!r}: use const, random or none")
    if not np.isfinite(trunc):
        raise InputError(f"--trunc must be a number (1 = no truncation), got {trunc}")
    seed_list = parse_seeds(seeds)
    generator = load_generator(ckpt, which=which)
    label = None
    if generator.c_dim > 0:
        if class_idx is None or not 0 <= class_idx < generator.c_dim:
            raise InputError(f"{ckpt} is conditional: pass --class between 0 and {generator.c_dim - 1}")
        label = torch.zeros(1, generator.c_dim)
        label[0, class_idx] = 1
    images = []
    for seed in track(seed_list, "sampling"):
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, generator.z_dim)).float()
        with torch.no_grad():
            img = generator(
                z, label, truncation_psi=trunc, truncation_cutoff=trunc_cutoff, noise_mode=noise_mode
            )
        pixels = (img[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
        images.append(pixels)
        write_bytes_atomic(outdir / f"seed{seed:04d}.png", _png_bytes(pixels))
    if grid:
        write_bytes_atomic(outdir / "grid.png", _png_bytes(_grid(images)))
    info(f"wrote {len(images)} images to {outdir}")


def _grid(images: list[np.ndarray]) -> np.ndarray:
    """Tile HxWxC uint8 images into a near-square grid (row-major, black padding)."""
    import numpy as np

    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    h, w, c = images[0].shape
    canvas = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        canvas[r * h : (r + 1) * h, q * w : (q + 1) * w] = img
    return canvas


def _png_bytes(pixels: np.ndarray) -> bytes:
    """PNG file bytes of an HxWxC uint8 image (C = 1 is written as greyscale)."""
    from PIL import Image

    buffer = io.BytesIO()
    array = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def gan_group(app: typer.Typer) -> typer.Typer:
    """The `gan` sub-app of ``app``, created on first use (shared with stylesurv.gan.train_commands)."""
    for group in app.registered_groups:
        if group.name == "gan" and group.typer_instance is not None:
            return group.typer_instance
    gan = typer.Typer(help="StyleGAN2: convert, inspect, sample, train.", no_args_is_help=True)
    app.add_typer(gan, name="gan")
    return gan


def register(app: typer.Typer) -> None:
    """Add `gan convert`, `gan info` and `gan sample`."""
    gan = gan_group(app)
    gan.command("convert")(convert_command)
    gan.command("info")(info_command)
    gan.command("sample")(sample_command)
