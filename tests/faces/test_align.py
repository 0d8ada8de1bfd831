"""FFHQ alignment: exact geometry on known points, and invariance on a real photo's variants."""

from __future__ import annotations

import numpy as np
import pytest

from stylesurv.core.geometry import (
    MIRROR_ORDER,
    apply_affine,
    eye_mouth_points,
    ffhq_quad,
    mirror_landmarks,
    quad_to_square_affine,
)
from stylesurv.faces.align import align_face, align_landmarks, check_resolution
from stylesurv.faces.detect import detect_faces
from tests.faces.photos import grayscale, jpeg_roundtrip, place, rescale, rotate

R = 128
TOLERANCE = 0.015 * R  # the bound: 1.5 % of R


def _eye_angle(landmarks: np.ndarray) -> float:
    eye_left, eye_right, _ = eye_mouth_points(landmarks)
    return float(np.degrees(np.arctan2(*(eye_right - eye_left)[::-1])))


# ------------------------------------------------------------------------------------- exact geometry
def _template_landmarks(centre: tuple[float, float], scale: float, roll_degrees: float) -> np.ndarray:
    """A plausible 68-point face (astronaut-like proportions), rolled and scaled, around ``centre``."""
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 0.3, size=(68, 2))
    base[36:42] = [-0.45, -0.3] + rng.normal(0, 0.05, (6, 2))  # image-left eye
    base[42:48] = [0.45, -0.3] + rng.normal(0, 0.05, (6, 2))  # image-right eye
    base[48], base[54] = [-0.35, 0.55], [0.35, 0.55]  # mouth corners
    angle = np.radians(roll_degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return base @ rotation.T * scale + np.asarray(centre)


def _blob_image(shape: tuple[int, int], points: np.ndarray, sigma: float) -> np.ndarray:
    """Grey image with a white Gaussian blob centred on each point (continuous coordinates)."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    blobs = sum(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in points)
    gray = np.clip(40 + 215 * blobs, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _centroid(image: np.ndarray, near: np.ndarray, radius: float) -> np.ndarray:
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]] + 0.5
    weight = np.clip(image[:, :, 0].astype(np.float64) - 40, 0, None)
    weight[(xs - near[0]) ** 2 + (ys - near[1]) ** 2 > radius**2] = 0
    return np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()


@pytest.mark.parametrize(
    ("photo_hw", "centre", "scale", "roll", "resolution"),
    [
        ((400, 500), (250, 200), 60.0, 12.0, 64),  # inside the photo, downsampled with supersampling
        ((300, 300), (70, 240), 60.0, -25.0, 64),  # square leaves the photo: reflect padding
        ((1600, 1600), (800, 800), 400.0, 5.0, 64),  # large face: integer shrink first
        ((200, 200), (100, 100), 25.0, 0.0, 128),  # small face: magnified (low resolution)
    ],
)
def test_blobs_land_where_the_affine_map_sends_them(photo_hw, centre, scale, roll, resolution) -> None:
    """Known answer: a blob at photo point p must appear at A p in the aligned image (A from geometry)."""
    landmarks = _template_landmarks(centre, scale, roll)
    eye_left, eye_right, mouth = eye_mouth_points(landmarks)
    targets = np.stack([eye_left, eye_right, mouth])
    affine = quad_to_square_affine(ffhq_quad(landmarks), resolution)
    sigma_aligned = 2.0
    sigma_photo = sigma_aligned / np.sqrt(abs(np.linalg.det(affine[:, :2])))
    photo = _blob_image(photo_hw, targets, sigma_photo)
    aligned = align_face(photo, landmarks, resolution)
    expected = apply_affine(affine, targets)
    for point in expected:
        found = _centroid(aligned.image, point, radius=4 * sigma_aligned)
        assert np.hypot(*(found - point)) < 0.15, (found, point)
    np.testing.assert_allclose(aligned.landmarks, apply_affine(affine, landmarks), atol=1e-9)
    side = np.hypot(*(ffhq_quad(landmarks)[3] - ffhq_quad(landmarks)[0]))
    assert aligned.upsample == pytest.approx(resolution / side)


def test_padding_leaves_no_black_border() -> None:
    """Where the square leaves the photo the output is filled from the photo, not left black."""
    landmarks = _template_landmarks((40, 40), 50.0, 0.0)
    photo = np.full((200, 200, 3), 160, dtype=np.uint8)
    aligned = align_face(photo, landmarks, 64)
    assert aligned.image.min() > 120
    unpadded = align_face(photo, landmarks, 64, pad=False)
    assert unpadded.image.min() == 0  # without padding the outside is black: the test can tell the two apart


def test_resolution_is_checked() -> None:
    assert check_resolution(64) == 64
    for bad in (16, 2048, 64.5):
        with pytest.raises(ValueError, match="resolution"):
            check_resolution(bad)


def test_mirror_order_is_an_involution_that_swaps_eyes() -> None:
    assert np.array_equal(MIRROR_ORDER[MIRROR_ORDER], np.arange(68))
    assert (
        MIRROR_ORDER[36] == 45 and MIRROR_ORDER[48] == 54 and MIRROR_ORDER[30] == 30 and MIRROR_ORDER[8] == 8
    )


def test_mirrored_landmarks_give_the_mirrored_square() -> None:
    """Exact: aligning mirrored landmarks gives the mirror of the aligned landmarks."""
    landmarks = _template_landmarks((150, 120), 40.0, 17.0)
    direct = align_landmarks(landmarks, R)
    mirrored = align_landmarks(mirror_landmarks(landmarks, 300.0), R)
    np.testing.assert_allclose(mirrored, mirror_landmarks(direct, R), atol=1e-9)


# ----------------------------------------------------------------------------------- astronaut variants
@pytest.fixture(scope="module")
def original(astronaut: np.ndarray):
    return align_face(astronaut, detect_faces(astronaut)[0].landmarks, R)


VARIANTS = {
    "rotated +15": lambda im: rotate(im, 15),
    "rotated -20": lambda im: rotate(im, -20),
    "scaled 0.5": lambda im: rescale(im, 0.5),
    "scaled 2": lambda im: rescale(im, 2.0),
    "off-centre": lambda im: place(im, (800, 900), (250, 360)),
    "grayscale": grayscale,
    "jpeg 30": lambda im: jpeg_roundtrip(im, 30),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_align_to_the_same_landmarks(astronaut: np.ndarray, original, variant: str) -> None:
    photo = VARIANTS[variant](astronaut)
    faces = detect_faces(photo)
    assert faces, f"no face found in the {variant} photo"
    aligned = align_face(photo, faces[0].landmarks, R)
    distance = np.hypot(*(aligned.landmarks - original.landmarks).T)
    assert distance.mean() < TOLERANCE
    # the points that define the alignment (eye centres, mouth centre) each within 1.5 % of R
    for ours, theirs in zip(
        eye_mouth_points(aligned.landmarks), eye_mouth_points(original.landmarks), strict=True
    ):
        assert np.hypot(*(ours - theirs)) < TOLERANCE
    assert abs(_eye_angle(aligned.landmarks)) < 1.0
    # the pixels agree as well (same face, same framing): mean absolute luminance difference of a few levels
    assert np.abs(aligned.image.mean(axis=2) - original.image.mean(axis=2)).mean() < 12


def test_original_eyes_level(original) -> None:
    assert abs(_eye_angle(original.landmarks)) < 1.0
    assert original.image.shape == (R, R, 3) and original.image.dtype == np.uint8


def test_mirrored_photo_aligns_to_the_mirror_image(astronaut: np.ndarray, original) -> None:
    photo = np.ascontiguousarray(astronaut[:, ::-1])
    aligned = align_face(photo, detect_faces(photo)[0].landmarks, R)
    distance = np.hypot(*(aligned.landmarks - mirror_landmarks(original.landmarks, R)).T)
    assert distance.mean() < TOLERANCE
    assert abs(_eye_angle(aligned.landmarks)) < 1.0
    mirror_error = np.abs(aligned.image[:, ::-1].astype(float) - original.image).mean()
    plain_error = np.abs(aligned.image.astype(float) - original.image).mean()
    assert mirror_error < 8 and mirror_error < 0.5 * plain_error


@pytest.mark.parametrize("sigma", [1.5, 7.0, 20.0])
def test_fast_padding_blur_matches_a_plain_gaussian(astronaut: np.ndarray, sigma: float) -> None:
    """The blur of the padding runs on a reduced copy when wide; it must match scipy's full-size blur."""
    from scipy.ndimage import gaussian_filter

    from stylesurv.faces.align import _blur

    reference = gaussian_filter(astronaut.astype(np.float32), sigma=(sigma, sigma, 0), mode="nearest")
    error = np.abs(_blur(astronaut, sigma) - reference)
    inner = error[int(3 * sigma) : -int(3 * sigma), int(3 * sigma) : -int(3 * sigma)]
    assert inner.mean() < 0.5 and inner.max() < 3.0  # grey levels out of 255
