"""FFHQ-style alignment: warp the oriented face square of a photo to an R x R image.

The procedure follows the one used to build FFHQ (Karras et al. 2019; facts only, the code is ours): the
square comes from eye centres and mouth corners (`geometry.ffhq_quad`); a large photo is first shrunk by an
integer factor (box filter) so the square keeps at least about 2 source pixels per output pixel; the photo is
cropped to the square plus a border; where the square leaves the photo, the photo is reflect-padded and the
padding is blurred and faded to the photo's median colour so no hard edge or mirrored face shows; the square
is then resampled bilinearly at up to ``supersample`` x R and downsampled to R with a Lanczos filter.

All coordinates are continuous pixel coordinates with pixel centres at integer + 0.5 (as in
`geometry.quad_to_square_affine`), which is also PIL's convention for `Image.transform` and `resize`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from stylesurv.core.geometry import apply_affine, ffhq_quad, quad_to_square_affine

MIN_RESOLUTION = 32
MAX_RESOLUTION = 1024


@dataclass(frozen=True)
class AlignedFace:
    """An aligned face: the R x R image, the 68 landmarks in its coordinates, and how it was made."""

    image: np.ndarray  # [R, R, 3] uint8
    landmarks: np.ndarray  # [68, 2] in aligned pixel coordinates
    upsample: float  # R / side of the face square in photo pixels; > 1 means the photo was magnified
    quad: (
        np.ndarray
    )  # [4, 2] the face square in photo coordinates (top-left, bottom-left, bottom-right, top-right)


def check_resolution(resolution: int) -> int:
    """Validate an output side: an integer from 32 to 1024 (any value; powers of two suit the generator)."""
    if int(resolution) != resolution or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(
            f"resolution must be an integer from {MIN_RESOLUTION} to {MAX_RESOLUTION}, got {resolution}"
        )
    return int(resolution)


def align_landmarks(landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """The 68 landmarks in the coordinates of the aligned R x R image (no pixels needed)."""
    affine = quad_to_square_affine(ffhq_quad(landmarks), resolution)
    return apply_affine(affine, landmarks)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, resolution: int, supersample: int = 4, pad: bool = True
) -> AlignedFace:
    """Align the face with the given 68 landmarks (photo coordinates) of an RGB ``uint8`` photo to R x R.

    ``supersample``: the most the square is oversampled before the final antialiased downsampling.
    ``pad``: reflect-pad, blur and fade where the square leaves the photo (otherwise the outside is black).
    """
    resolution = check_resolution(resolution)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    landmarks = np.asarray(landmarks, dtype=np.float64)
    photo_quad = ffhq_quad(landmarks)
    side = float(np.hypot(*(photo_quad[3] - photo_quad[0])))
    quad = photo_quad.copy()

    # crop to the square plus a border (integer offsets keep the coordinates exact)
    border = max(round(side * 0.1), 3)
    height, width = image.shape[:2]
    left = max(math.floor(quad[:, 0].min()) - border, 0)
    top = max(math.floor(quad[:, 1].min()) - border, 0)
    right = min(math.ceil(quad[:, 0].max()) + border, width)
    bottom = min(math.ceil(quad[:, 1].max()) + border, height)
    if right <= left or bottom <= top:
        raise ValueError(
            "the face square lies entirely outside the photo; the landmarks do not fit this photo"
        )
    crop = Image.fromarray(image[top:bottom, left:right])
    quad -= (left, top)

    # shrink a large photo by an integer factor so the square keeps >= 2 source pixels per output pixel
    shrink = math.floor(side / resolution * 0.5)
    if shrink > 1:
        crop = crop.reduce(shrink)
        quad /= shrink
        side /= shrink
        border = max(round(side * 0.1), 3)

    if pad:
        crop, offset = _pad_outside(crop, quad, side, border)
        quad += offset

    oversample = int(min(max(math.ceil(side / resolution), 1), supersample))
    size = resolution * oversample
    warped = crop.transform((size, size), Image.Transform.QUAD, quad.flatten(), Image.Resampling.BILINEAR)
    if oversample > 1:
        warped = warped.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return AlignedFace(
        image=np.asarray(warped, dtype=np.uint8).copy(),
        landmarks=align_landmarks(landmarks, resolution),
        upsample=resolution / (side * max(shrink, 1)),
        quad=photo_quad,
    )


def _pad_outside(
    crop: Image.Image, quad: np.ndarray, side: float, border: int
) -> tuple[Image.Image, tuple[int, int]]:
    """Reflect-pad the sides of ``crop`` that the square crosses; blur and fade the padding.

    Returns the padded image and the (x, y) shift the padding adds to coordinates.
    """
    width, height = crop.size
    need = (
        -math.floor(quad[:, 0].min()),
        -math.floor(quad[:, 1].min()),
        math.ceil(quad[:, 0].max()) - width,
        math.ceil(quad[:, 1].max()) - height,
    )
    if max(need) <= 0:
        return crop, (0, 0)
    minimum = max(round(side * 0.3), 1)
    pad_l, pad_t, pad_r, pad_b = (max(n + border, minimum) if n > 0 else 0 for n in need)
    mode = "reflect" if min(width, height) > 1 else "edge"
    padded = np.pad(np.asarray(crop), ((pad_t, pad_b), (pad_l, pad_r), (0, 0)), mode=mode)
    pixels = padded.astype(np.float32)
    # fade: 0 on the photo's edge, rising to 1 at the padding's outer edge, negative inside the photo
    fade_x = _edge_fade(pixels.shape[1], pad_l, pad_r)
    fade_y = _edge_fade(pixels.shape[0], pad_t, pad_b)
    fade = np.maximum(fade_x[None, :], fade_y[:, None])[:, :, None]
    pixels += (_blur(padded, max(side * 0.02, 0.5)) - pixels) * np.clip(fade * 3.0 + 1.0, 0.0, 1.0)
    median = np.median(pixels[::4, ::4], axis=(0, 1))  # a subsample gives the same median colour, faster
    pixels += (median - pixels) * np.clip(fade, 0.0, 1.0)
    padded = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return padded, (pad_l, pad_t)


def _blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an RGB ``uint8`` image as float32.  A wide blur runs on a box-reduced copy (at
    least 3 pixels of sigma remain) and is resized back bilinearly: the result is smooth, so nothing is
    lost, and a 20-pixel blur of a large photo takes a fraction of the time."""
    factor = max(1, int(sigma // 3))
    if factor == 1:
        return gaussian_filter(pixels.astype(np.float32), sigma=(sigma, sigma, 0), mode="nearest")
    height, width = pixels.shape[:2]
    # edge-pad to whole blocks so that the reduced grid maps back onto the full one exactly
    whole = np.pad(pixels, ((0, -height % factor), (0, -width % factor), (0, 0)), mode="edge")
    small = np.asarray(Image.fromarray(whole).reduce(factor), dtype=np.float32)
    small = gaussian_filter(small, sigma=(sigma / factor, sigma / factor, 0), mode="nearest")
    size = (whole.shape[1], whole.shape[0])
    channels = [Image.fromarray(np.ascontiguousarray(small[:, :, c])) for c in range(3)]
    full = np.stack([np.asarray(c.resize(size, Image.Resampling.BILINEAR)) for c in channels], axis=2)
    return full[:height, :width]


def _edge_fade(length: int, pad_before: int, pad_after: int) -> np.ndarray:
    """Along one padded axis: max over padded sides of 1 - (distance from the outer edge) / (pad width)."""
    coord = np.arange(length, dtype=np.float32)
    fade = np.full(length, -np.inf, dtype=np.float32)
    if pad_before > 0:
        fade = np.maximum(fade, 1.0 - coord / pad_before)
    if pad_after > 0:
        fade = np.maximum(fade, 1.0 - (length - 1 - coord) / pad_after)
    return fade
