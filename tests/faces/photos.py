"""Photo variants for the face tests (made from scikit-image's astronaut in the tests themselves)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate counter-clockwise by ``degrees`` about the centre, enlarging the canvas to keep every pixel."""
    return np.asarray(Image.fromarray(image).rotate(degrees, Image.Resampling.BICUBIC, expand=True))


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    size = (round(width * factor), round(height * factor))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def place(
    image: np.ndarray, canvas_hw: tuple[int, int], top_left: tuple[int, int], value: int = 90
) -> np.ndarray:
    """The image pasted into a larger flat grey canvas at (top, left)."""
    canvas = np.full((*canvas_hw, 3), value, dtype=np.uint8)
    top, left = top_left
    canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
    return canvas


def grayscale(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(Image.fromarray(image).convert("L"))[:, :, None], 3, axis=2)
