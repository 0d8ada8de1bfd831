"""StyleSpace: the per-channel styles that every synthesis layer's affine map makes from its W+ code.

Each modulated convolution (and each toRGB) scales its input channels by a style ``s = A w + b``, computed
from one of the W+ codes.  The styles of all layers, concatenated, are the StyleSpace code of an image
(Wu et al., "StyleSpace Analysis", CVPR 2021): an affine function of the W+ code, so a linear survival
model on styles predicts exactly as a linear model on W+ would, but its coefficients live on channels,
and many channels change one part of the picture only.  An edit along a style-space direction may leave
the image of W+ (it need not be ``A`` of any W+ move), which is how an edit can stay on the face where
every W+ direction also moves the background.

:class:`StyleSpaceGenerator` renders style codes: a generator whose "W" is the style vector (``num_ws``
1), so every tool that renders W codes (edits, attribution, the face subspace) works in style space too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents

if TYPE_CHECKING:
    from stylesurv.gan.networks import Generator


@dataclass(frozen=True)
class StyleLayer:
    """One affine map: its module path, the W+ layer it reads and its channels' slice of the style code."""

    name: str
    ws_index: int
    start: int
    stop: int


def style_layers(generator: Generator) -> list[StyleLayer]:
    """The affine maps of a synthesis network in rendering order, with the W+ layer each reads."""
    synthesis = generator.synthesis
    layers: list[StyleLayer] = []
    start = ws_index = 0
    for res in synthesis.block_resolutions:
        block = getattr(synthesis, f"b{res}")
        names = (["conv0"] if block.in_channels != 0 else []) + ["conv1"]
        offsets = list(range(len(names)))
        if (
            block.num_torgb
        ):  # toRGB reads the code after the block's convolutions (shared with the next block)
            names.append("torgb")
            offsets.append(block.num_conv)
        for name, offset in zip(names, offsets, strict=True):
            channels = int(getattr(block, name).affine.weight.shape[0])
            layers.append(StyleLayer(f"b{res}.{name}", ws_index + offset, start, start + channels))
            start += channels
        ws_index += block.num_conv
    return layers


def style_dim(generator: Generator) -> int:
    """Length of a style code."""
    return style_layers(generator)[-1].stop


def _affine(generator: Generator, layer: StyleLayer) -> Any:
    block, name = layer.name.split(".")
    return getattr(getattr(generator.synthesis, block), name).affine


def styles_from_codes(generator: Generator, codes: np.ndarray, batch: int = 256) -> np.ndarray:
    """Style codes [N, D] (float64) of W [N, w_dim] or W+ [N, num_ws, w_dim] codes."""
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim == 2:
        codes = np.repeat(codes[:, None, :], generator.num_ws, axis=1)
    if codes.ndim != 3 or codes.shape[1:] != (generator.num_ws, generator.w_dim):
        raise InputError(
            f"codes of shape {list(codes.shape)} do not fit this generator "
            f"(W [N, {generator.w_dim}] or W+ [N, {generator.num_ws}, {generator.w_dim}])"
        )
    layers = style_layers(generator)
    device = next(generator.synthesis.parameters()).device
    out = np.zeros((len(codes), layers[-1].stop))
    with torch.no_grad():
        for first in range(0, len(codes), batch):
            chunk = torch.from_numpy(codes[first : first + batch]).to(device)
            for layer in layers:
                styles = _affine(generator, layer)(chunk[:, layer.ws_index])
                out[first : first + len(chunk), layer.start : layer.stop] = styles.double().cpu().numpy()
    return out


@contextmanager
def styles_fixed(generator: Generator, styles: torch.Tensor) -> Iterator[None]:
    """Within the block, every affine map of ``generator`` outputs its slice of ``styles`` [N, D]."""

    def replace(layer: StyleLayer) -> Any:
        def hook(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return styles[:, layer.start : layer.stop].to(output.dtype)

        return hook

    handles = [
        _affine(generator, layer).register_forward_hook(replace(layer)) for layer in style_layers(generator)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class StyleSynthesis(torch.nn.Module):
    """Synthesis from style codes: ``ws`` [N, 1, D] holds the styles; the W+ input is then ignored."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator
        self.num_ws, self.w_dim = 1, style_dim(generator)
        self.img_resolution = generator.img_resolution

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", **kwargs: Any) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1] != 1 or ws.shape[2] != self.w_dim:
            raise ValueError(f"style codes must be [N, 1, {self.w_dim}], got {list(ws.shape)}")
        placeholder = ws.new_zeros(len(ws), self.generator.num_ws, self.generator.w_dim)
        with styles_fixed(self.generator, ws[:, 0].float()):
            return self.generator.synthesis(placeholder, noise_mode=noise_mode, **kwargs)


class StyleSpaceGenerator(torch.nn.Module):
    """A generator whose codes are style codes: ``w_dim`` the style length, ``num_ws`` 1."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.synthesis = StyleSynthesis(generator)
        self.num_ws, self.w_dim = 1, self.synthesis.w_dim
        self.img_resolution, self.img_channels = generator.img_resolution, generator.img_channels


def with_styles(latents: Latents, generator: Generator) -> Latents:
    """The latents with their style codes (re)computed from their W+ (or W) codes by ``generator``'s affine
    maps: the styles always match the generator at hand."""
    import dataclasses

    codes = latents.wplus if latents.wplus is not None else latents.w
    return dataclasses.replace(latents, styles=styles_from_codes(generator, codes))
