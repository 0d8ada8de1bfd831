"""Batched projection of images into a generator's W or W+ space by gradient descent.

The schedule follows the reference StyleGAN2-ADA projector (Karras et al. 2020, ``projector.py``): Adam
(betas 0.9, 0.999) with learning rate 0.1 warmed up over the first 5 % of the steps and ramped down by a
half cosine over the last 25 %; Gaussian noise added to the latent, of scale ``w_std * 0.05`` decaying
quadratically to zero at 75 % of the steps (``w_std`` is the RMS distance of mapped codes from their mean);
optional optimisation of the per-layer noise maps with the multi-resolution autocorrelation regulariser of
weight 1e5, re-normalised to zero mean and unit variance after every step.

Unlike the reference, many images are optimised at once.  The loss is a sum of per-image losses and Adam
is elementwise, and every random draw of an image comes from its own seed, so an image's result does not
depend on which other images share its batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.func import functional_call

SPACES = ("w", "wplus")
NOISE_BUFFER_SUFFIX = "noise_const"  # NVIDIA's name for a synthesis layer's constant noise map [R, R]


@dataclass(frozen=True)
class ProjectConfig:
    """Settings of the projector; the defaults of the reference projector except ``space`` and ``steps``."""

    space: str = "wplus"  # "w": one code per image for all layers; "wplus": one code per layer
    steps: int = 100  # optimisation steps
    lr: float = 0.1  # peak Adam learning rate
    lr_rampup: float = 0.05  # fraction of steps with linear warm-up
    lr_rampdown: float = 0.25  # fraction of steps with cosine ramp-down at the end
    initial_noise_factor: float = 0.05  # latent noise at step 0, in units of w_std
    noise_ramp: float = 0.75  # fraction of steps over which latent noise decays to zero
    optimize_noise: bool = False  # also optimise the synthesis noise maps, per image
    noise_weight: float = 1e5  # weight of the noise-map regulariser
    w_avg_samples: int = 10_000  # mapped samples used to estimate w_std

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Projection:
    """Result of a projection: codes, their reconstructions and final per-image losses."""

    ws: torch.Tensor  # [N, num_ws, w_dim] codes as fed to the synthesis network
    images: torch.Tensor  # [N, 3, R, R] reconstructions in [-1, 1] (noise_mode "const" or optimised maps)
    loss: torch.Tensor  # [N] final reconstruction loss
    noise: dict[str, torch.Tensor]  # buffer name -> [N, 1, r, r] optimised noise maps (empty if none)

    @property
    def w(self) -> torch.Tensor:
        """[N, w_dim]: the W code (the layer mean, equal to every layer's code for space "w")."""
        return self.ws.mean(dim=1)


def learning_rate(step: int, config: ProjectConfig) -> float:
    """The reference projector's learning rate at ``step``: linear warm-up, flat, half-cosine ramp-down."""
    t = step / max(config.steps, 1)
    ramp = min(1.0, (1.0 - t) / config.lr_rampdown) if config.lr_rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / config.lr_rampup) if config.lr_rampup > 0 else 1.0
    return config.lr * ramp


def latent_noise_scale(step: int, config: ProjectConfig, w_std: float) -> float:
    """Standard deviation of the noise added to the latent at ``step`` (quadratic decay to 0)."""
    t = step / max(config.steps, 1)
    if config.noise_ramp <= 0:
        return 0.0
    return w_std * config.initial_noise_factor * max(0.0, 1.0 - t / config.noise_ramp) ** 2


@torch.no_grad()
def w_std_estimate(generator: nn.Module, samples: int = 10_000, seed: int = 123) -> float:
    """RMS distance of mapped codes from ``w_avg`` (the reference projector's ``w_std``), from fixed z."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, generator.z_dim, generator=rng).to(generator.mapping.w_avg)
    c = z.new_zeros(samples, generator.c_dim)
    w = generator.mapping(z, c)[:, 0, :]
    return float((w - generator.mapping.w_avg).square().sum(dim=1).mean().sqrt())


def image_rngs(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU random generator per image, so an image's draws depend only on its own seed."""
    return [torch.Generator().manual_seed(int(seed)) for seed in seeds]


def _per_image_randn(rngs: list[torch.Generator], shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """[N, *shape] standard normal draws, row i from ``rngs[i]``, on ``like``'s device and dtype."""
    return torch.stack([torch.randn(shape, generator=rng) for rng in rngs]).to(like)


def noise_buffer_names(generator: nn.Module) -> list[str]:
    """Names (relative to ``generator.synthesis``) of the constant noise maps of its synthesis layers."""
    return [name for name, _ in generator.synthesis.named_buffers() if name.endswith(NOISE_BUFFER_SUFFIX)]


def noise_regularizer(maps: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-image squared autocorrelation of the noise maps at shifts of one pixel, over a resolution pyramid.

    Each map is [N, 1, r, r]; the result is [N].  Halving stops once a map is 8x8 or smaller.
    """
    total: torch.Tensor | None = None
    for noise in maps.values():
        while True:
            term = (noise * noise.roll(1, dims=3)).mean(dim=(1, 2, 3)).square()
            term = term + (noise * noise.roll(1, dims=2)).mean(dim=(1, 2, 3)).square()
            total = term if total is None else total + term
            if noise.shape[2] <= 8:
                break
            noise = nn.functional.avg_pool2d(noise, 2)
    if total is None:
        raise ValueError("no noise maps to regularise")
    return total


def _normalise_noise(maps: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for noise in maps.values():
            noise -= noise.mean(dim=(1, 2, 3), keepdim=True)
            noise *= noise.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()


def synthesize(generator: nn.Module, ws: torch.Tensor, noise: dict[str, torch.Tensor]) -> torch.Tensor:
    """Images from codes [N, num_ws, w_dim]; per-image noise maps, if given, replace the constant ones."""
    if not noise:
        return generator.synthesis(ws, noise_mode="const")
    return functional_call(generator.synthesis, noise, (ws,), {"noise_mode": "const"}, strict=False)


def initial_codes(generator: nn.Module, n: int, space: str, init: torch.Tensor | None) -> torch.Tensor:
    """Starting point of the optimisation: [N, w_dim] for "w", [N, num_ws, w_dim] for "wplus".

    ``init`` may be W codes [N, w_dim] or W+ codes [N, num_ws, w_dim] (e.g. an encoder's output); without
    it every image starts at ``w_avg``.  A W+ init is averaged over layers for "w"; a W init is broadcast.
    """
    w_avg = generator.mapping.w_avg.detach()
    init = w_avg.expand(n, -1) if init is None else init.detach().to(w_avg)
    if space == "w":
        return (init.mean(dim=1) if init.ndim == 3 else init).clone()
    if init.ndim == 2:
        init = init.unsqueeze(1).expand(-1, generator.num_ws, -1)
    return init.clone()


def project(
    generator: nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    seeds: Sequence[int],
    config: ProjectConfig,
    init: torch.Tensor | None = None,
    w_std: float | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Projection:
    """Optimise codes for ``n`` images so that ``loss_fn(synthesis(codes))`` (a [N] tensor) is small.

    ``loss_fn`` holds the targets (e.g. a :class:`~stylesurv.invert.losses.ReconstructionLoss` after
    ``set_target``); ``seeds`` gives one seed per image for its latent and noise-map randomness.  ``w_std``
    defaults to :func:`w_std_estimate`; pass it to skip the estimate when projecting many batches.
    """
    if len(seeds) != n:
        raise ValueError(f"need one seed per image: {len(seeds)} seeds for {n} images")
    generator.eval().requires_grad_(False)
    if w_std is None:
        w_std = w_std_estimate(generator, config.w_avg_samples)
    rngs = image_rngs(seeds)
    w_opt = initial_codes(generator, n, config.space, init).requires_grad_(True)
    noise: dict[str, torch.Tensor] = {}
    if config.optimize_noise:
        buffers = dict(generator.synthesis.named_buffers())
        for name in noise_buffer_names(generator):
            shape = (1, *buffers[name].shape[-2:])
            noise[name] = _per_image_randn(rngs, shape, w_opt).requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt, *noise.values()], lr=config.lr, betas=(0.9, 0.999))

    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        scale = latent_noise_scale(step, config, w_std)
        w_noisy = w_opt + _per_image_randn(rngs, tuple(w_opt.shape[1:]), w_opt) * scale
        ws = w_noisy.unsqueeze(1).expand(-1, generator.num_ws, -1) if config.space == "w" else w_noisy
        loss = loss_fn(synthesize(generator, ws, noise)).sum()
        if noise:
            loss = loss + config.noise_weight * noise_regularizer(noise).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _normalise_noise(noise)
        if on_step is not None:
            on_step(step)

    with torch.no_grad():
        final = w_opt.detach()
        ws = final.unsqueeze(1).expand(-1, generator.num_ws, -1) if config.space == "w" else final
        ws = ws.clone()
        frozen = {name: value.detach() for name, value in noise.items()}
        images = synthesize(generator, ws, frozen)
        final_loss = loss_fn(images)
    return Projection(ws=ws, images=images, loss=final_loss.detach(), noise=frozen)
