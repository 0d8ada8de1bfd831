"""Training configurations: network sizes and the hyper-parameters of StyleGAN2-ADA, by name or resolution.

The paper presets carry the values published with StyleGAN2-ADA (Karras et al. 2020, Table/config list of
stylegan2-ada-pytorch's train.py); ``auto`` derives them from the resolution the way that code does; the
``synth*`` presets are small networks for the procedural world, sized so that fine-tuning and embedding
run on a laptop CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from stylesurv.core.errors import InputError


@dataclass(frozen=True)
class TrainPreset:
    """Network sizes and loss/optimiser hyper-parameters of one training configuration."""

    resolution: int  # image side R in pixels (power of two)
    z_dim: int = 512  # latent z dimension
    w_dim: int = 512  # intermediate latent w dimension
    mapping_layers: int = 8  # fully connected layers in the mapping network
    channel_base: int = 32768  # feature maps at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512  # cap on feature maps per layer
    mbstd_group: int = 4  # minibatch-standard-deviation group size in D's epilogue
    batch: int = 32  # global minibatch (all processes together)
    gamma: float = 10.0  # R1 weight (the penalty is gamma / 2 * |grad D(x)|^2)
    ema_kimg: float = 10.0  # half-life of G's exponential moving average, in thousands of images
    ema_rampup: float | None = 0.05  # EMA half-life is at most ema_rampup * images seen; None: no ramp-up
    lr: float = 0.0025  # Adam learning rate of G and D
    pl_weight: float = 2.0  # path-length regularisation weight; 0 turns it off
    style_mixing: float = 0.9  # probability of mixing two latents in a minibatch
    r1_interval: int = 16  # lazy R1: every this many minibatches
    pl_interval: int = 4  # lazy path-length: every this many minibatches
    pl_decay: float = 0.01  # moving-average decay of the path-length target
    pl_batch_shrink: int = 2  # path-length penalty runs on batch // this
    mirror: bool = True  # x-flipped copies of the training images double the data

    def generator_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of stylesurv.gan.networks.Generator for this configuration."""
        return {
            "z_dim": self.z_dim,
            "c_dim": 0,
            "w_dim": self.w_dim,
            "img_resolution": self.resolution,
            "img_channels": 3,
            "mapping_kwargs": {"num_layers": self.mapping_layers},
            "synthesis_kwargs": {"channel_base": self.channel_base, "channel_max": self.channel_max},
        }

    def discriminator_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of stylesurv.gan.networks.Discriminator for this configuration."""
        return {
            "c_dim": 0,
            "img_resolution": self.resolution,
            "img_channels": 3,
            "channel_base": self.channel_base,
            "channel_max": self.channel_max,
            "epilogue_kwargs": {"mbstd_group_size": self.mbstd_group},
        }

    def replace(self, **changes: Any) -> TrainPreset:
        """A copy with some fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def auto_config(resolution: int, batch: int | None = None) -> TrainPreset:
    """The resolution-derived defaults of stylegan2-ada-pytorch's ``auto`` configuration (one process)."""
    _check_resolution(resolution)
    batch = batch or max(min(4096 // resolution, 32), 1)
    return TrainPreset(
        resolution=resolution,
        mapping_layers=2,
        channel_base=32768 if resolution >= 512 else 16384,
        channel_max=512,
        mbstd_group=min(batch, 4),
        batch=batch,
        gamma=0.0002 * resolution**2 / batch,
        ema_kimg=batch * 10 / 32,
        ema_rampup=0.05,
    )


def _synth(resolution: int, channel_base: int, mapping_layers: int) -> TrainPreset:
    batch = 32
    return TrainPreset(
        resolution=resolution,
        z_dim=128,
        w_dim=128,
        mapping_layers=mapping_layers,
        channel_base=channel_base,
        channel_max=128,
        mbstd_group=4,
        batch=batch,
        gamma=0.0002 * resolution**2 / batch,
        ema_kimg=batch * 10 / 32,
        ema_rampup=0.05,
    )


PRESETS: dict[str, TrainPreset] = {
    # The procedural world: ~1 M parameters per network.
    "synth32": _synth(32, channel_base=2048, mapping_layers=2),
    "synth64": _synth(64, channel_base=4096, mapping_layers=4),
    # Published StyleGAN2-ADA configurations (paper256/512/1024 and StyleGAN2 config F).
    "paper256": TrainPreset(
        256, channel_base=16384, mbstd_group=8, batch=64, gamma=1.0, ema_kimg=20.0, ema_rampup=None
    ),
    "paper512": TrainPreset(
        512, channel_base=32768, mbstd_group=8, batch=64, gamma=0.5, ema_kimg=20.0, ema_rampup=None
    ),
    "paper1024": TrainPreset(
        1024, channel_base=32768, mbstd_group=4, batch=32, gamma=2.0, ema_kimg=10.0, ema_rampup=None
    ),
    "stylegan2": TrainPreset(
        1024, channel_base=32768, mbstd_group=4, batch=32, gamma=10.0, ema_kimg=10.0, ema_rampup=None
    ),
}


def get_config(name: str, resolution: int) -> TrainPreset:
    """The preset ``name`` (or ``auto``) for images of side ``resolution``; a mismatch is an InputError."""
    if name == "auto":
        return auto_config(resolution)
    if name not in PRESETS:
        raise InputError(
            f"unknown training preset (cfg, --cfg) {name!r}; choose one of: auto, {', '.join(PRESETS)}"
        )
    config = PRESETS[name]
    if config.resolution != resolution:
        raise InputError(
            f"the training preset {name} (cfg, --cfg) is for {config.resolution} px images but the data are "
            f"{resolution} px; use auto or a preset of the right resolution"
        )
    return config


def _check_resolution(resolution: int) -> None:
    if resolution < 4 or resolution & (resolution - 1):
        raise InputError(f"image resolution must be a power of two >= 4, got {resolution}")
