"""Safe photo reading: refuse decompression bombs before decoding, apply EXIF orientation, convert to RGB.

Every photo of a cohort goes through here.  `check_image` inspects a file cheaply (header, then a decode at
reduced scale where the format allows it) so that validation of thousands of photos stays fast;
`read_image` returns the pixels as an ``uint8`` array ``[H, W, 3]`` plus notes on what was converted.
Bad files raise `InputError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from stylesurv.core.errors import InputError

MAX_PIXELS = 100_000_000  # refuse images above 100 megapixels, before their pixels are decoded
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL itself raises DecompressionBombError above twice this

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ORIENTATION_TAG = 0x0112
_ORIENTATION_NAMES = {
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped vertically",
    5: "transposed",
    6: "rotated 90° clockwise",
    7: "transversed",
    8: "rotated 90° counter-clockwise",
}
_MODE_NOTES = {
    "1": "1-bit black-and-white image converted to RGB",
    "L": "grayscale image converted to RGB",
    "LA": "grayscale image with alpha converted to RGB (composited on white)",
    "P": "palette image converted to RGB",
    "PA": "palette image with alpha converted to RGB (composited on white)",
    "RGBA": "alpha channel removed (composited on white)",
    "RGBa": "alpha channel removed (composited on white)",
    "CMYK": "CMYK image converted to RGB",
    "YCbCr": "YCbCr image converted to RGB",
    "LAB": "Lab image converted to RGB",
    "HSV": "HSV image converted to RGB",
    "F": "floating-point image converted to 8-bit RGB",
}


@dataclass
class ImageCheck:
    """What a cheap inspection of one photo found: size, mode, conversion notes, or why it is unusable."""

    path: Path
    width: int = 0
    height: int = 0
    format: str = ""
    mode: str = ""
    notes: list[str] = field(default_factory=list)
    error: str = ""  # empty when the photo is usable
    fix: str = ""


@contextlib.contextmanager
def quiet_bomb_warnings() -> Iterator[None]:
    """Silence PIL's DecompressionBombWarning: our own size check refuses those images with a clear error.

    Not thread-safe (it changes the process-wide warning filters): enter it once, around any thread pool.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


class ImageRefused(InputError):
    """A photo that cannot be used, with the reason and the fix kept apart for validation reports."""

    def __init__(self, path: Path, reason: str, fix: str) -> None:
        super().__init__(f"{path}: {reason}. {fix}")
        self.path, self.reason, self.fix = path, reason, fix


def open_image(path: str | Path) -> Image.Image:
    """Open a photo lazily (header only) and refuse it if it is not an image or is above `MAX_PIXELS`.

    Raises ImageRefused (an InputError) for a missing, non-image or oversized file; no pixels are decoded.
    """
    path = Path(path)
    downscale = "Downscale the photo (e.g. to 4000 px on its longer side)"
    try:
        image = Image.open(path)
    except FileNotFoundError as exc:
        raise ImageRefused(path, "file not found", "Check the photo's name or the `photo` column") from exc
    except Image.DecompressionBombError as exc:
        reason = f"image is larger than {MAX_PIXELS // 1_000_000} megapixels, refused before decoding ({exc})"
        raise ImageRefused(path, reason, downscale) from exc
    except UnidentifiedImageError as exc:
        raise ImageRefused(
            path, f"not an image file ({_sniff(path)})", "Replace it with a JPEG, PNG, WebP or TIFF photo"
        ) from exc
    except OSError as exc:
        raise ImageRefused(path, f"cannot read the file ({exc})", "Check permissions or re-copy it") from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        reason = (
            f"image is {width}x{height} = {width * height / 1e6:.0f} megapixels, above the "
            f"{MAX_PIXELS // 1_000_000} megapixel limit; refused before decoding (decompression bomb?)"
        )
        raise ImageRefused(path, reason, downscale)
    if width < 1 or height < 1:
        image.close()
        raise ImageRefused(path, f"image has no pixels ({width}x{height})", "Replace the photo")
    return image


def conversion_notes(image: Image.Image, path: str | Path) -> list[str]:
    """Notes on what `read_image` will change: EXIF orientation, 16-bit depth, mode conversion to RGB."""
    notes = []
    frames = getattr(image, "n_frames", 1)
    if getattr(image, "is_animated", False) and frames > 1:
        notes.append(f"animated image of {frames} frames: the first frame is used")
    orientation = _orientation(image)
    if orientation in _ORIENTATION_NAMES:
        notes.append(f"EXIF orientation {orientation} applied ({_ORIENTATION_NAMES[orientation]})")
    if _bit_depth(image, Path(path)) == 16:
        notes.append("16-bit image reduced to 8 bits per channel")
    if image.mode in _MODE_NOTES:
        notes.append(_MODE_NOTES[image.mode])
    elif image.mode.startswith("I;16") or image.mode == "I":
        notes.append("grayscale image converted to RGB")
    elif image.mode != "RGB":
        notes.append(f"{image.mode} image converted to RGB")
    return notes


def check_image(path: str | Path) -> ImageCheck:
    """Inspect one photo cheaply: refuse bombs from the header, then decode (JPEG at 1/8 scale) to find
    truncated or corrupt data.  Never raises for a bad photo: the problem is in the result's `error`.

    Not for use inside a thread pool directly (it changes warning filters); use `check_image_unguarded`
    there, inside one `quiet_bomb_warnings()` block.
    """
    with quiet_bomb_warnings():
        return check_image_unguarded(path)


def check_image_unguarded(path: str | Path) -> ImageCheck:
    """`check_image` without the warning filter, for thread pools wrapped in `quiet_bomb_warnings()`."""
    path = Path(path)
    result = ImageCheck(path=path)

    def inspect(image: Image.Image) -> None:
        result.width, result.height = image.size
        result.format = image.format or ""
        result.mode = image.mode
        result.notes = conversion_notes(image, path)

    try:
        _decode(path, reduced=True, inspect=inspect).close()
    except ImageRefused as exc:
        result.error, result.fix = exc.reason, exc.fix
    return result


def _decode(path: Path, reduced: bool, inspect: Callable[[Image.Image], None] | None = None) -> Image.Image:
    """Open and decode a photo, checking PNG chunk checksums too; JPEG at 1/8 scale when `reduced`.

    `inspect` sees the image after its header is read, before decoding.  Raises ImageRefused for anything
    unusable: decoding is what finds truncated or corrupt data.
    """
    try:
        image = open_image(path)
        try:
            if image.format == "PNG":
                image.verify()  # chunk CRCs, which decoding alone does not check; needs a fresh open after
                image.close()
                image = open_image(path)
            if inspect is not None:
                inspect(image)
            if reduced and image.format == "JPEG":
                image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
        except BaseException:
            image.close()
            raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRefused(
            path, f"corrupt or truncated image data ({exc})", "Re-export or re-copy the photo from its source"
        ) from exc
    return image


def read_image(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Decode a photo to RGB ``uint8`` ``[H, W, 3]`` with EXIF orientation applied; also return notes.

    Grayscale, palette, CMYK, 16-bit and alpha images are converted (alpha composited on white) and each
    conversion is noted.  Raises InputError for non-image, truncated, corrupt or oversized (> 100 MP) files.
    """
    path = Path(path)
    with quiet_bomb_warnings():
        with _decode(path, reduced=False) as image:
            notes = conversion_notes(image, path)
            try:
                rgb = _to_rgb(ImageOps.exif_transpose(image))
            except (OSError, ValueError) as exc:
                raise ImageRefused(
                    path, f"cannot convert to RGB ({exc})", "Re-export the photo as RGB"
                ) from exc
    return rgb, notes


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Pixels as ``uint8`` RGB; 16-bit scaled by 1/257, alpha composited on white."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        gray = np.asarray(image).astype(np.int64)
        gray = np.clip((gray + 128) // 257, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.nan_to_num(np.asarray(image)), 0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in ("LA", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except (OSError, SyntaxError, ValueError, TypeError):
        return 1


def _bit_depth(image: Image.Image, path: Path) -> int:
    """Bits per channel stored in the file (Pillow reads 16-bit RGB PNG as 8-bit RGB, so ask the header)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return 16
    if image.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR":
            return head[24]
    if image.format == "TIFF":
        bits = getattr(image, "tag_v2", {}).get(258)
        if isinstance(bits, tuple | list) and bits:
            return int(bits[0])
        if isinstance(bits, int):
            return bits
    return 8


def _sniff(path: Path) -> str:
    """A short guess at what a non-image file is, for the error message."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return "unreadable"
    if not head:
        return "empty file"
    if head.startswith(_PNG_SIGNATURE) or head.startswith(b"\xff\xd8"):
        return "image header present but the data is corrupt"
    if head.startswith(b"%PDF"):
        return "content is a PDF document"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "content is not JPEG, PNG, WebP or TIFF"
    return "content is text"
