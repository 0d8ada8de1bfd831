"""Safe photo reading: bombs refused from the header, bad files named, conversions to RGB, known pixels."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylesurv.cohort.images import MAX_PIXELS, check_image, read_image
from stylesurv.core.errors import InputError


# --------------------------------------------------------------------------------- crafted files (shared)
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes | None) -> bytes:
    """A PNG written byte by byte; `raw_rows` is the filtered scanline data, or None for a header-only file
    (a decompression bomb: the header claims a size whose pixels are never stored)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(raw_rows) if raw_rows is not None else zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def write_bomb_png(path: Path, width: int = 20_000, height: int = 20_000) -> None:
    path.write_bytes(png_bytes(width, height, 8, 2, None))


def write_rgb16_png(path: Path, rgb16: tuple[int, int, int], size: int = 4) -> None:
    """A 16-bit-per-channel RGB PNG filled with one colour (Pillow cannot write these)."""
    pixel = struct.pack(">HHH", *rgb16)
    path.write_bytes(png_bytes(size, size, 16, 2, (b"\0" + pixel * size) * size))


def write_truncated_jpeg(path: Path) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_corrupt_png(path: Path) -> None:
    """A PNG whose compressed pixel data has a flipped byte (its CRC no longer matches)."""
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 20
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))


def write_exif_rotated_jpeg(path: Path) -> None:
    """A 40x20 (W x H) JPEG, left half red, right half blue, with EXIF orientation 6 (turn 90° clockwise)."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, exif=exif, quality=95)


# ----------------------------------------------------------------------------------------------- refusals
def test_bomb_header_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    write_bomb_png(path)
    assert path.stat().st_size < 200  # the claimed 400 MP are never stored, and never allocated
    check = check_image(path)
    assert "megapixels" in check.error and "refused before decoding" in check.error
    with pytest.raises(InputError, match="megapixels"):
        read_image(path)


def test_bomb_between_pil_limits_is_refused_by_our_own_size_check(tmp_path: Path) -> None:
    # 12000 x 9000 = 108 MP: above our 100 MP limit but below PIL's own error threshold (2 x MAX_PIXELS).
    path = tmp_path / "big.png"
    write_bomb_png(path, 12_000, 9_000)
    assert MAX_PIXELS < 12_000 * 9_000 < 2 * MAX_PIXELS
    check = check_image(path)
    assert "12000x9000 = 108 megapixels" in check.error
    with pytest.raises(InputError, match="108 megapixels"):
        read_image(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"patient notes, not a photo\n", "content is text"), (b"", "empty file"), (b"%PDF-1.4\n", "PDF")],
)
def test_non_image_with_image_extension(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    check = check_image(path)
    assert "not an image file" in check.error and reason in check.error
    assert check.fix
    with pytest.raises(InputError, match="not an image file"):
        read_image(path)


@pytest.mark.parametrize("writer", [write_truncated_jpeg, write_corrupt_png])
def test_truncated_or_corrupt_image(tmp_path: Path, writer) -> None:
    path = tmp_path / ("x.jpg" if writer is write_truncated_jpeg else "x.png")
    writer(path)
    check = check_image(path)
    assert "corrupt or truncated" in check.error
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_image(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in check_image(tmp_path / "absent.jpg").error
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "absent.jpg")


# ---------------------------------------------------------------------------------------------- conversions
def test_rgb_png_round_trips_exactly_without_notes(tmp_path: Path) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    rgb, notes = read_image(tmp_path / "a.png")
    assert notes == [] and check_image(tmp_path / "a.png").notes == []
    np.testing.assert_array_equal(rgb, pixels)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgb, notes = read_image(tmp_path / "g.png")
    assert notes == ["grayscale image converted to RGB"]
    np.testing.assert_array_equal(rgb, np.repeat(gray[:, :, None], 3, axis=2))


def test_gray16_png_scaled_to_8_bits(tmp_path: Path) -> None:
    # 16-bit value v maps to round(v / 257): 51400 = 200 * 257 -> 200, 65535 -> 255, 0 -> 0.
    values = np.array([[0, 51400], [65535, 257]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    rgb, notes = read_image(tmp_path / "g16.png")
    assert "16-bit image reduced to 8 bits per channel" in notes
    np.testing.assert_array_equal(rgb[:, :, 0], [[0, 200], [255, 1]])
    assert check_image(tmp_path / "g16.png").notes == notes


def test_rgb16_png_noted_and_read(tmp_path: Path) -> None:
    write_rgb16_png(tmp_path / "c16.png", (200 * 257, 10 * 257, 65535))
    rgb, notes = read_image(tmp_path / "c16.png")
    assert notes == ["16-bit image reduced to 8 bits per channel"]
    assert rgb.shape == (4, 4, 3)
    np.testing.assert_array_equal(rgb[0, 0], [200, 10, 255])


def test_palette_png_keeps_its_colours(tmp_path: Path) -> None:
    pixels = np.zeros((6, 6, 3), np.uint8)
    pixels[:3] = (10, 200, 30)
    pixels[3:] = (250, 5, 90)
    Image.fromarray(pixels).convert("P", palette=Image.Palette.ADAPTIVE, colors=2).save(tmp_path / "p.png")
    rgb, notes = read_image(tmp_path / "p.png")
    assert notes == ["palette image converted to RGB"]
    np.testing.assert_array_equal(rgb, pixels)


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (100, 50, 0, 255)  # opaque: unchanged
    rgba[0, 1] = (100, 50, 0, 0)  # transparent: white
    rgba[1, :] = (0, 0, 0, 128)  # half black over white: 255 * 127 / 255 = 127
    Image.fromarray(rgba).save(tmp_path / "a.png")
    rgb, notes = read_image(tmp_path / "a.png")
    assert notes == ["alpha channel removed (composited on white)"]
    np.testing.assert_array_equal(rgb[0, 0], [100, 50, 0])
    np.testing.assert_array_equal(rgb[0, 1], [255, 255, 255])
    assert np.all(np.abs(rgb[1].astype(int) - 127) <= 1)


def test_cmyk_jpeg_converted(tmp_path: Path) -> None:
    # Pillow's naive CMYK -> RGB: R = 255 - C - K.  C = 255, M = Y = K = 0 is cyan (0, 255, 255).
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(tmp_path / "c.jpg", quality=100)
    rgb, notes = read_image(tmp_path / "c.jpg")
    assert notes == ["CMYK image converted to RGB"]
    assert np.all(np.abs(rgb.astype(int) - [0, 255, 255]) <= 3)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    write_exif_rotated_jpeg(tmp_path / "r.jpg")
    rgb, notes = read_image(tmp_path / "r.jpg")
    assert notes == ["EXIF orientation 6 applied (rotated 90° clockwise)"]
    assert rgb.shape == (40, 20, 3)  # 40 wide, 20 high stored; shown 20 wide, 40 high
    top, bottom = rgb[:18].reshape(-1, 3).mean(0), rgb[22:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 50  # the stored left (red) half is on top after a clockwise turn
    assert bottom[2] > 200 and bottom[0] < 50
    assert check_image(tmp_path / "r.jpg").notes == notes
