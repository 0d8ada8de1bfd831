"""Name and layout mapping between rosinality's stylegan2-pytorch checkpoints and NVIDIA's names (ours).

The two implementations compute the same functions with differently stored tensors:
- dense layers (`style.{i}` = `mapping.fc{i-1}`, `*.modulation` = `*.affine`, `final_linear.*`) store the
  same unscaled weights and biases with the same lr-multiplier conventions: copied as is;
- modulated conv weights carry a leading batch axis `[1, O, I, k, k]` there; both sides convolve the
  upsampling layers with the same (unflipped, transposed) kernel, so no flip is needed;
- `const` is `input.input[0]`, noise strengths are `[1]` vectors vs scalars, noise maps are
  `noises.noise_{i}` `[1, 1, R, R]` vs `noise_const` `[R, R]`, ToRGB biases are `[1, 3, 1, 1]` vs `[3]`;
- blur kernels: the generator's upsampling kernels include the gain `up**2 = 4`, NVIDIA's
  `resample_filter` buffers do not; the discriminator's are equal.
- rosinality does not store the average w; `latent_avg` is used when the file has one.
Channel counts come from the tensors and are expressed as NVIDIA `channel_base` / `channel_max`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from stylesurv.core.errors import CheckpointError
from stylesurv.gan.networks import Discriminator, Generator

UP_GAIN = 4  # rosinality's generator blur kernels are scaled by factor**2 for 2x upsampling


def _channel_config(channels: dict[int, int], source: str) -> dict[str, int]:
    """channel_base / channel_max such that min(channel_base // r, channel_max) == channels[r] for all r."""
    channel_max = max(channels.values())
    below = sorted(r for r, c in channels.items() if c < channel_max)
    channel_base = channels[below[0]] * below[0] if below else channel_max * max(channels)
    if any(min(channel_base // r, channel_max) != c for r, c in channels.items()):
        raise CheckpointError(f"{source}: channel counts {channels} do not follow channel_base / resolution")
    return dict(channel_base=channel_base, channel_max=channel_max)


def _require(state: Mapping[str, torch.Tensor], keys: list[str], source: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{source}: rosinality checkpoint lacks {missing[:5]}")


class _Taker:
    """Pops tensors from a rosinality state dict and reports leftovers, so no weight goes unused."""

    def __init__(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        self._state = dict(state)
        self._source = source

    def __call__(self, key: str) -> torch.Tensor:
        if key not in self._state:
            raise CheckpointError(f"{self._source}: rosinality checkpoint lacks {key}")
        return self._state.pop(key)

    def has(self, key: str) -> bool:
        return key in self._state

    def finish(self) -> None:
        if self._state:
            raise CheckpointError(
                f"{self._source}: unexpected tensors in rosinality checkpoint: {sorted(self._state)[:8]}"
            )


def generator_from_rosinality(
    state: Mapping[str, torch.Tensor], source: str, lr_multiplier: float = 0.01
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(Generator config, NVIDIA-named state dict) from a rosinality `g_ema` state dict.

    `mapping.w_avg` is absent from the result (rosinality does not store it). `lr_multiplier` is the
    mapping network's (rosinality's `lr_mlp`, 0.01 unless the model was trained otherwise).
    """
    take = _Taker(state, source)
    n_mlp = len([k for k in state if re.fullmatch(r"style\.\d+\.weight", k)])
    n_blocks = len([k for k in state if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k)])
    if n_mlp == 0 or "input.input" not in state:
        raise CheckpointError(f"{source}: not a rosinality StyleGAN2 generator (no style.* / input.input)")
    _require(state, ["style.1.weight", "conv1.conv.weight", "to_rgb1.conv.weight"], source)
    _require(state, [f"convs.{2 * i}.conv.weight" for i in range(n_blocks)], source)
    w_dim = int(state["style.1.weight"].shape[0])
    resolution = 2 ** (n_blocks + 2)
    channels = {4: int(state["conv1.conv.weight"].shape[1])}
    for i in range(n_blocks):
        channels[8 * 2**i] = int(state[f"convs.{2 * i}.conv.weight"].shape[1])
    img_channels = int(state["to_rgb1.conv.weight"].shape[1])
    config = dict(
        z_dim=int(state["style.1.weight"].shape[1]),
        c_dim=0,
        w_dim=w_dim,
        img_resolution=resolution,
        img_channels=img_channels,
        mapping_kwargs=dict(num_layers=n_mlp, lr_multiplier=lr_multiplier),
        synthesis_kwargs=_channel_config(channels, source),
    )
    out: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = take(f"style.{i + 1}.weight")
        out[f"mapping.fc{i}.bias"] = take(f"style.{i + 1}.bias")
    out["synthesis.b4.const"] = take("input.input")[0]

    def styled_conv(dst: str, src: str, noise_index: int) -> None:
        out[f"{dst}.weight"] = take(f"{src}.conv.weight")[0]
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.noise_strength"] = take(f"{src}.noise.weight").reshape([])
        out[f"{dst}.bias"] = take(f"{src}.activate.bias")
        out[f"{dst}.noise_const"] = take(f"noises.noise_{noise_index}")[0, 0]
        if take.has(f"{src}.conv.blur.kernel"):
            out[f"{dst}.resample_filter"] = take(f"{src}.conv.blur.kernel") / UP_GAIN

    def to_rgb(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = take(f"{src}.conv.weight")[0]
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.bias"] = take(f"{src}.bias").reshape(-1)

    styled_conv("synthesis.b4.conv1", "conv1", 0)
    to_rgb("synthesis.b4.torgb", "to_rgb1")
    for i in range(n_blocks):
        block = f"synthesis.b{8 * 2**i}"
        styled_conv(f"{block}.conv0", f"convs.{2 * i}", 2 * i + 1)
        styled_conv(f"{block}.conv1", f"convs.{2 * i + 1}", 2 * i + 2)
        to_rgb(f"{block}.torgb", f"to_rgbs.{i}")
        out[f"{block}.resample_filter"] = take(f"to_rgbs.{i}.upsample.kernel") / UP_GAIN
    take.finish()
    return config, out


def generator_to_rosinality(generator: Generator) -> dict[str, torch.Tensor]:
    """The generator's weights in rosinality's `g_ema` layout (for interoperability and round-trip tests)."""
    sd = {k: v.detach().clone() for k, v in generator.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for i in range(generator.mapping.num_layers):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.b4.const"][None]

    def styled_conv(src: str, dst: str, noise_index: int, up: bool) -> None:
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        out[f"noises.noise_{noise_index}"] = sd[f"{src}.noise_const"][None, None]
        if up:
            out[f"{dst}.conv.blur.kernel"] = sd[f"{src}.resample_filter"] * UP_GAIN

    def to_rgb(src: str, dst: str) -> None:
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)

    styled_conv("synthesis.b4.conv1", "conv1", 0, up=False)
    to_rgb("synthesis.b4.torgb", "to_rgb1")
    for i, res in enumerate(generator.synthesis.block_resolutions[1:]):
        block = f"synthesis.b{res}"
        styled_conv(f"{block}.conv0", f"convs.{2 * i}", 2 * i + 1, up=True)
        styled_conv(f"{block}.conv1", f"convs.{2 * i + 1}", 2 * i + 2, up=False)
        to_rgb(f"{block}.torgb", f"to_rgbs.{i}")
        out[f"to_rgbs.{i}.upsample.kernel"] = sd[f"{block}.resample_filter"] * UP_GAIN
    return out


def discriminator_from_rosinality(
    state: Mapping[str, torch.Tensor], source: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(Discriminator config, NVIDIA-named state dict) from a rosinality `d` state dict (resnet D)."""
    take = _Taker(state, source)
    n_blocks = len([k for k in state if re.fullmatch(r"convs\.\d+\.conv1\.0\.weight", k)])
    if n_blocks == 0 or "final_conv.0.weight" not in state:
        raise CheckpointError(f"{source}: not a rosinality StyleGAN2 discriminator")
    _require(
        state, ["convs.0.0.weight"] + [f"convs.{k}.conv1.0.weight" for k in range(1, n_blocks + 1)], source
    )
    resolution = 2 ** (n_blocks + 2)
    c4 = int(state["final_conv.0.weight"].shape[0])
    channels = {4: c4}
    for k in range(1, n_blocks + 1):
        channels[resolution // 2 ** (k - 1)] = int(state[f"convs.{k}.conv1.0.weight"].shape[0])
    config = dict(
        c_dim=0,
        img_resolution=resolution,
        img_channels=int(state["convs.0.0.weight"].shape[1]),
        architecture="resnet",
        **_channel_config(channels, source),
        epilogue_kwargs=dict(
            mbstd_group_size=4, mbstd_num_channels=int(state["final_conv.0.weight"].shape[1]) - c4
        ),
    )
    out = {
        f"b{resolution}.fromrgb.weight": take("convs.0.0.weight"),
        f"b{resolution}.fromrgb.bias": take("convs.0.1.bias"),
    }
    for k in range(1, n_blocks + 1):
        block = f"b{resolution // 2 ** (k - 1)}"
        out[f"{block}.conv0.weight"] = take(f"convs.{k}.conv1.0.weight")
        out[f"{block}.conv0.bias"] = take(f"convs.{k}.conv1.1.bias")
        kernel = take(f"convs.{k}.conv2.0.kernel")
        out[f"{block}.resample_filter"] = kernel.clone()
        out[f"{block}.conv1.resample_filter"] = kernel
        out[f"{block}.conv1.weight"] = take(f"convs.{k}.conv2.1.weight")
        out[f"{block}.conv1.bias"] = take(f"convs.{k}.conv2.2.bias")
        out[f"{block}.skip.resample_filter"] = take(f"convs.{k}.skip.0.kernel")
        out[f"{block}.skip.weight"] = take(f"convs.{k}.skip.1.weight")
    out["b4.conv.weight"] = take("final_conv.0.weight")
    out["b4.conv.bias"] = take("final_conv.1.bias")
    out["b4.fc.weight"] = take("final_linear.0.weight")
    out["b4.fc.bias"] = take("final_linear.0.bias")
    out["b4.out.weight"] = take("final_linear.1.weight")
    out["b4.out.bias"] = take("final_linear.1.bias")
    take.finish()
    return config, out


def discriminator_to_rosinality(discriminator: Discriminator) -> dict[str, torch.Tensor]:
    """A resnet discriminator's weights in rosinality's `d` layout."""
    if discriminator.c_dim != 0 or discriminator.b4.architecture != "resnet":
        raise CheckpointError("only unconditional resnet discriminators exist in rosinality's layout")
    sd = {k: v.detach().clone() for k, v in discriminator.state_dict().items()}
    top = discriminator.img_resolution
    out = {"convs.0.0.weight": sd[f"b{top}.fromrgb.weight"], "convs.0.1.bias": sd[f"b{top}.fromrgb.bias"]}
    for k, res in enumerate(discriminator.block_resolutions, start=1):
        out[f"convs.{k}.conv1.0.weight"] = sd[f"b{res}.conv0.weight"]
        out[f"convs.{k}.conv1.1.bias"] = sd[f"b{res}.conv0.bias"]
        out[f"convs.{k}.conv2.0.kernel"] = sd[f"b{res}.conv1.resample_filter"]
        out[f"convs.{k}.conv2.1.weight"] = sd[f"b{res}.conv1.weight"]
        out[f"convs.{k}.conv2.2.bias"] = sd[f"b{res}.conv1.bias"]
        out[f"convs.{k}.skip.0.kernel"] = sd[f"b{res}.skip.resample_filter"]
        out[f"convs.{k}.skip.1.weight"] = sd[f"b{res}.skip.weight"]
    out["final_conv.0.weight"] = sd["b4.conv.weight"]
    out["final_conv.1.bias"] = sd["b4.conv.bias"]
    out["final_linear.0.weight"] = sd["b4.fc.weight"]
    out["final_linear.0.bias"] = sd["b4.fc.bias"]
    out["final_linear.1.weight"] = sd["b4.out.weight"]
    out["final_linear.1.bias"] = sd["b4.out.bias"]
    return out


@torch.no_grad()
def estimate_w_avg(generator: Generator, num_samples: int = 10_000, seed: int = 0) -> torch.Tensor:
    """Mean of mapping(z) over `num_samples` seeded z ~ N(0, I): the w_avg rosinality files do not store."""
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(generator.w_dim, dtype=torch.float64)
    done = 0
    while done < num_samples:
        n = min(1000, num_samples - done)
        z = torch.randn(n, generator.z_dim, generator=gen)
        ws = generator.mapping(z, None)
        total += ws[:, 0].double().sum(dim=0)
        done += n
    return (total / num_samples).float()


def looks_like_rosinality(obj: Any) -> bool:
    """True for a dict with a rosinality generator (`g_ema` or `g`) holding `style.1.weight`."""
    return isinstance(obj, Mapping) and any(
        isinstance(obj.get(k), Mapping) and "style.1.weight" in obj[k] for k in ("g_ema", "g")
    )


def latent_avg_of(obj: Mapping[str, Any], w_dim: int) -> torch.Tensor | None:
    """The stored mean latent (`latent_avg`, as written by rosinality's converter and pSp/e4e), if any."""
    value = obj.get("latent_avg")
    if not isinstance(value, torch.Tensor) or value.numel() % w_dim != 0:
        return None
    return value.reshape(-1, w_dim)[0].float()
