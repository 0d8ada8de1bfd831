"""A small convolutional encoder from an image to W+ codes, trained on the generator's own samples.

Architecture: a 1x1 ``from_rgb`` convolution, then per resolution from R down to 8 two 3x3 convolutions
(the second with stride 2) with leaky ReLU, then a fully connected layer on the 4x4 features.  A W head
predicts an offset from ``w_avg``; a W+ head predicts per-layer offsets from that W code.  Training
(:func:`train_encoder`) regresses the known codes of generated images (with truncation and style-mixing
variety, and augmented inputs), adds an image reconstruction loss through the frozen generator, optionally a
reconstruction loss on real photos, and a regulariser that keeps the per-layer offsets small, i.e. the
codes close to W (as e4e does).  No normalisation layers: an image's code never depends on its batch mates.

Saved as ``encoder.safetensors`` (weights; the JSON config in the metadata) plus ``encoder.json``.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from stylesurv.core.atomic import write_json_atomic, write_safetensors_atomic
from stylesurv.core.errors import CheckpointError
from stylesurv.core.hashing import sha256_file
from stylesurv.invert.project import w_std_estimate

WEIGHTS_FILE = "encoder.safetensors"
CONFIG_FILE = "encoder.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of an encoder; it must match the generator it was trained for."""

    resolution: int  # input image side R (a power of two >= 8)
    num_ws: int  # generator layers fed by W+
    w_dim: int  # latent width
    channel_base: int = 1024  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 256
    hidden: int = 512  # width of the fully connected layer before the heads

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Encoder(nn.Module):
    """Image [N, 3, R, R] in [-1, 1] -> (w [N, w_dim], wplus [N, num_ws, w_dim])."""

    def __init__(self, config: EncoderConfig, w_avg: torch.Tensor) -> None:
        super().__init__()
        res = config.resolution
        if res < 8 or res & (res - 1):
            raise ValueError(f"encoder resolution must be a power of two >= 8, not {res}")
        self.config = config
        self.register_buffer("w_avg", w_avg.detach().clone().float().reshape(config.w_dim))
        layers: list[nn.Module] = [nn.Conv2d(3, config.channels(res), 1), nn.LeakyReLU(0.2)]
        while res > 4:
            cin, cout = config.channels(res), config.channels(res // 2)
            layers += [nn.Conv2d(cin, cin, 3, padding=1), nn.LeakyReLU(0.2)]
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            res //= 2
        self.trunk = nn.Sequential(*layers)
        flat = config.channels(4) * 16
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, config.hidden), nn.LeakyReLU(0.2))
        self.head_w = nn.Linear(config.hidden, config.w_dim)
        self.head_wplus = nn.Linear(config.hidden, config.num_ws * config.w_dim)
        with torch.no_grad():  # start at w_avg with equal layers: the heads learn offsets from there
            for head in (self.head_w, self.head_wplus):
                head.weight.mul_(0.1)
                head.bias.zero_()

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(self.trunk(img))
        w = self.w_avg + self.head_w(h)
        delta = self.head_wplus(h).view(-1, self.config.num_ws, self.config.w_dim)
        return w, w.unsqueeze(1) + delta


def new_encoder(generator: nn.Module, seed: int = 0, **shape: int) -> Encoder:
    """An untrained encoder for ``generator``, initialised from ``seed`` without touching the global RNG."""
    config = EncoderConfig(
        resolution=generator.img_resolution, num_ws=generator.num_ws, w_dim=generator.w_dim, **shape
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Encoder(config, generator.mapping.w_avg.detach().cpu())


def save_encoder(folder: str | os.PathLike[str], encoder: Encoder, info: dict[str, Any]) -> None:
    """Write the encoder's weights (config in the safetensors metadata) and ``encoder.json`` atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = asdict(encoder.config)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    metadata = {"config": json.dumps(config), "format_version": str(FORMAT_VERSION)}
    write_safetensors_atomic(folder / WEIGHTS_FILE, state, metadata)
    write_json_atomic(folder / CONFIG_FILE, {"config": config, "format_version": FORMAT_VERSION, **info})


def load_encoder(folder: str | os.PathLike[str]) -> Encoder:
    """Rebuild an encoder from a folder written by :func:`save_encoder` (no code is executed)."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no encoder weights; train one with `stylesurv encoder train`")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
        config = EncoderConfig.from_dict(json.loads(metadata["config"]))
    except (SafetensorError, KeyError, ValueError, TypeError, OSError) as exc:
        raise CheckpointError(f"{path}: not a stylesurv encoder ({exc})") from None
    encoder = Encoder(config, state["w_avg"])
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the encoder config ({exc})") from None
    return encoder.eval()


def encoder_identity(folder: str | os.PathLike[str]) -> str:
    """The hash that names an encoder (latents' ``encoder_sha256``, encoder.json's ``init``, embed resume
    keys): SHA-256 of its ``encoder.safetensors``, the weights with the config in their metadata, i.e. all
    that :func:`load_encoder` reads (encoder.json's training notes do not change it)."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no encoder weights; train one with `stylesurv encoder train`")
    return sha256_file(path)


def check_encoder_matches(encoder: Encoder, generator: nn.Module, where: str) -> None:
    """Raise CheckpointError if the encoder was built for a generator of another shape."""
    c = encoder.config
    want = (generator.img_resolution, generator.num_ws, generator.w_dim)
    if (c.resolution, c.num_ws, c.w_dim) != want:
        raise CheckpointError(
            f"{where}: encoder is for resolution/num_ws/w_dim {(c.resolution, c.num_ws, c.w_dim)}, "
            f"the generator has {want}; train an encoder for this generator"
        )


# ------------------------------------------------------------------------------------------------ training
@dataclass(frozen=True)
class EncoderTrainConfig:
    """Training settings of :func:`train_encoder`."""

    steps: int = 2000  # optimiser steps
    batch: int = 16  # generated images per step (and real photos per step, if given)
    lr: float = 1e-3  # Adam learning rate, cosine-decayed to 0
    seed: int = 0  # seeds the initialisation, latent sampling and augmentation
    psi_min: float = 0.5  # truncation psi drawn uniformly from [psi_min, psi_max] per sample
    psi_max: float = 1.0
    mix_prob: float = 0.5  # probability of style mixing at a random layer (gives W+ variety)
    latent_weight: float = 1.0  # code regression, in units of the per-dimension variance of W
    image_weight: float = 1.0  # pixel MSE of the reconstruction of generated images
    real_weight: float = 1.0  # pixel MSE of the reconstruction of real photos
    delta_weight: float = 0.01  # penalty on per-layer offsets from the W code (keeps codes close to W)
    max_shift: int = 2  # augmentation: random translation up to this many pixels
    max_sensor_noise: float = 0.03  # augmentation: additive Gaussian noise std up to this
    channel_base: int = 1024
    channel_max: int = 256


def sample_codes(
    generator: nn.Module, n: int, rng: torch.Generator, config: EncoderTrainConfig
) -> torch.Tensor:
    """W+ codes [n, num_ws, w_dim] of random samples with per-sample truncation and optional style mixing."""
    w_avg = generator.mapping.w_avg
    z = torch.randn(2, n, generator.z_dim, generator=rng).to(w_avg)
    c = z.new_zeros(n, generator.c_dim)
    ws, ws_mix = generator.mapping(z[0], c), generator.mapping(z[1], c)
    layer = torch.arange(generator.num_ws).to(w_avg.device)
    cutoff = torch.randint(1, max(generator.num_ws, 2), (n,), generator=rng).to(w_avg.device)
    mixed = (torch.rand(n, generator=rng) < config.mix_prob).to(w_avg.device)
    take_mix = (mixed[:, None] & (layer[None, :] >= cutoff[:, None]))[:, :, None]
    ws = torch.where(take_mix, ws_mix, ws)
    psi = (config.psi_min + (config.psi_max - config.psi_min) * torch.rand(n, generator=rng)).to(w_avg)
    return w_avg.lerp(ws, psi[:, None, None])


def augment(images: torch.Tensor, rng: torch.Generator, config: EncoderTrainConfig) -> torch.Tensor:
    """Random shift, brightness, contrast and sensor noise, each drawn per image from ``rng``."""
    n = images.shape[0]
    out = images
    if config.max_shift > 0:
        s = config.max_shift
        padded = F.pad(images, (s, s, s, s), mode="replicate")
        offsets = torch.randint(0, 2 * s + 1, (n, 2), generator=rng).tolist()
        r = images.shape[-1]
        out = torch.stack([padded[i, :, dy : dy + r, dx : dx + r] for i, (dy, dx) in enumerate(offsets)])
    brightness = ((torch.rand(n, generator=rng) - 0.5) * 0.2).to(out)
    contrast = (0.9 + 0.2 * torch.rand(n, generator=rng)).to(out)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast[:, None, None, None] + mean + brightness[:, None, None, None]
    sigma = (torch.rand(n, generator=rng) * config.max_sensor_noise).to(out)
    out = out + torch.randn(out.shape, generator=rng).to(out) * sigma[:, None, None, None]
    return out.clamp(-1, 1)


def train_encoder(
    generator: nn.Module,
    config: EncoderTrainConfig,
    real_images: torch.Tensor | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    init: Encoder | None = None,
) -> Encoder:
    """Train an encoder for the frozen ``generator``; deterministic for ``config.seed`` on CPU.

    ``real_images`` [M, 3, R, R] in [-1, 1] add a reconstruction loss on real photos.  ``on_step`` gets the
    step and its loss terms.  ``init`` warm-starts from an encoder trained for a related generator of the
    same shape (e.g. the base generator before fine-tuning, or an earlier snapshot): its layers are copied
    (``init`` itself is left untouched) and its ``w_avg`` is replaced by this generator's, since the heads
    predict offsets from it; far fewer steps are then needed than from scratch.
    """
    generator.eval().requires_grad_(False)
    device = generator.mapping.w_avg.device
    if init is None:
        shape = {"channel_base": config.channel_base, "channel_max": config.channel_max}
        encoder = new_encoder(generator, config.seed, **shape)
    else:
        check_encoder_matches(init, generator, "the --init encoder")
        encoder = copy.deepcopy(init).cpu()
        encoder.w_avg.copy_(generator.mapping.w_avg.detach().cpu())
    encoder = encoder.to(device).train()
    rng = torch.Generator().manual_seed(config.seed)
    w_var = w_std_estimate(generator) ** 2 / generator.w_dim  # per-dimension variance of W
    optimizer = torch.optim.Adam(encoder.parameters(), lr=config.lr, betas=(0.9, 0.99))
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / max(config.steps, 1)))
        with torch.no_grad():
            ws_true = sample_codes(generator, config.batch, rng, config)
            images = generator.synthesis(ws_true, noise_mode="const")
        w_pred, ws_pred = encoder(augment(images, rng, config))
        terms = {
            "latent": (ws_pred - ws_true).square().mean() / w_var,
            "delta": (ws_pred - w_pred.unsqueeze(1)).square().mean() / w_var,
        }
        if config.image_weight > 0:
            recon = generator.synthesis(ws_pred, noise_mode="const")
            terms["image"] = (recon - images).square().mean()
        if real_images is not None and config.real_weight > 0:
            pick = torch.randint(0, len(real_images), (config.batch,), generator=rng)
            real = real_images[pick].to(device)
            _, ws_real = encoder(augment(real, rng, config))
            terms["real"] = (generator.synthesis(ws_real, noise_mode="const") - real).square().mean()
        weights = {
            "latent": config.latent_weight,
            "delta": config.delta_weight,
            "image": config.image_weight,
            "real": config.real_weight,
        }
        loss = sum(weights[name] * value for name, value in terms.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step, {name: float(value.detach()) for name, value in terms.items()})
    return encoder.eval()
