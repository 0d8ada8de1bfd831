"""Rendering latent codes with a generator: W or W+ codes to uint8 images, and the style-space view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from stylesurv.core.latents import Latents
from stylesurv.gan.protocol import GeneratorLike
from stylesurv.gan.stylespace import with_styles

if TYPE_CHECKING:
    from stylesurv.gan.networks import Generator


def broadcast_ws(codes: np.ndarray, num_ws: int) -> np.ndarray:
    """Codes [N, w_dim] or [N, num_ws, w_dim] as synthesis input [N, num_ws, w_dim]."""
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim == 2:
        return np.repeat(codes[:, None, :], num_ws, axis=1)
    if codes.ndim == 3 and codes.shape[1] == num_ws:
        return codes
    raise ValueError(f"codes of shape {codes.shape} do not fit a generator with num_ws={num_ws}")


def style_space_view(latents: Latents, generator: Generator) -> tuple[Latents, GeneratorLike]:
    """The latents as style codes (in ``w``, recomputed by ``generator``) and a generator that renders style
    codes, so that a direction of a model fitted on styles is edited, measured and probed like a W one."""
    from stylesurv.gan.stylespace import StyleSpaceGenerator

    styled = with_styles(latents, generator)
    view = Latents(
        patient_id=styled.patient_id,
        w=styled.styles,
        styles=styled.styles,
        metrics=dict(styled.metrics),
        meta={**styled.meta, "space": "styles"},
    )
    return view, StyleSpaceGenerator(generator)


def to_uint8(images: Any) -> np.ndarray:
    """Generator output [N, 3, R, R] in [-1, 1] (tensor or array) as uint8 [N, R, R, 3]."""
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    arr = np.clip(np.rint((arr.transpose(0, 2, 3, 1) + 1.0) * 127.5), 0, 255)
    return arr.astype(np.uint8)


def synthesize(generator: GeneratorLike, ws: np.ndarray, batch: int = 16) -> np.ndarray:
    """Raw synthesis output [N, 3, R, R] float32 for ws [N, num_ws, w_dim], in batches, constant noise."""
    import torch

    outputs = []
    with torch.no_grad():
        for start in range(0, len(ws), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(ws[start : start + batch], dtype=np.float32))
            outputs.append(generator.synthesis(chunk, noise_mode="const").float().cpu().numpy())
    return np.concatenate(outputs, axis=0)
