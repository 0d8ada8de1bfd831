"""Faces edited along the health direction: G.synthesis(w + a * SD * d) for a symmetric range of a.

``a`` is in units of the cohort's SD of the health attribute, so a = +2 shows the face a patient two SDs
healthier would have.  Noise is constant (noise_mode "const"), so within a row only the code changes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from stylesurv.core.atomic import atomic_path
from stylesurv.explain.direction import HealthDirection
from stylesurv.gan.protocol import GeneratorLike
from stylesurv.gan.render import broadcast_ws, synthesize, to_uint8


def symmetric_alphas(max_sd: float, steps: int) -> np.ndarray:
    """``steps`` (odd, >= 3) evenly spaced values from -max_sd to +max_sd, 0 included."""
    if steps < 3 or steps % 2 == 0:
        raise ValueError(f"steps must be odd and >= 3 so that a = 0 is included, got {steps}")
    if max_sd <= 0:
        raise ValueError(f"max_sd must be positive, got {max_sd}")
    return np.linspace(-max_sd, max_sd, steps)


def render_edits(
    generator: GeneratorLike,
    codes: np.ndarray,
    direction: HealthDirection,
    alphas: Sequence[float],
    batch: int = 16,
) -> np.ndarray:
    """Edited faces uint8 [N, A, R, R, 3]: row n is code n moved by each alpha (in attribute SDs).

    A W direction [w_dim] applied to W+ codes [N, num_ws, w_dim] moves every layer alike, which moves
    their layer mean (the W code) by exactly the same step.
    """
    codes = np.asarray(codes, dtype=np.float64)
    offsets = np.stack([direction.offset(a) for a in alphas])  # [A, *shape]
    offsets = offsets.reshape(len(offsets), *([1] * (codes.ndim - offsets.ndim)), *direction.shape)
    edited = codes[:, None] + offsets[None]  # [N, A, *code shape]
    n, a = edited.shape[:2]
    ws = broadcast_ws(edited.reshape(n * a, *edited.shape[2:]), generator.num_ws)
    images = to_uint8(synthesize(generator, ws, batch))
    return images.reshape(n, a, *images.shape[1:])


def image_grid(images: np.ndarray, pad: int = 2, background: int = 255) -> Image.Image:
    """Images uint8 [rows, cols, R, R, 3] tiled into one picture with ``pad`` pixels between tiles."""
    rows, cols, height, width = images.shape[:4]
    canvas = np.full(
        (rows * height + (rows + 1) * pad, cols * width + (cols + 1) * pad, 3), background, dtype=np.uint8
    )
    for r in range(rows):
        for c in range(cols):
            y, x = pad + r * (height + pad), pad + c * (width + pad)
            canvas[y : y + height, x : x + width] = images[r, c]
    return Image.fromarray(canvas)


def save_png(image: Image.Image, path: str | os.PathLike[str]) -> None:
    """Write a PNG atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def save_gif(images: np.ndarray, path: str | os.PathLike[str], frame_ms: int = 150, scale: int = 1) -> None:
    """An animated GIF that sweeps the columns of images [rows, cols, R, R, 3] forth and back (loops).

    Each frame stacks all rows at one alpha side by side, so every face moves along the direction at once.
    """
    rows, cols = images.shape[:2]
    frames = []
    for c in list(range(cols)) + list(range(cols - 2, 0, -1)):
        frame = image_grid(images[:, c : c + 1].transpose(1, 0, 2, 3, 4), pad=0)
        if scale != 1:
            frame = frame.resize((frame.width * scale, frame.height * scale), Image.Resampling.NEAREST)
        frames.append(frame)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
