"""The portrait renderer: landmarks on the features, FFHQ framing, alignment equivalence, graded factors."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from stylesurv.cohort.render import (
    LABEL_BACKGROUND,
    LABEL_CLOTHING,
    LABEL_FACE,
    LABEL_OTHER,
    Rendering,
    render_aligned,
    render_unaligned,
)
from stylesurv.cohort.simulate import sample_factors
from stylesurv.core.geometry import apply_affine, eye_mouth_points, ffhq_quad, quad_to_square_affine


@pytest.fixture(scope="module")
def subjects() -> list[dict]:
    return sample_factors("cohort", 6, seed=5).to_dict(orient="records")


def _plain(s: dict, **changes: float) -> dict:
    """A frontal, healthy, glasses-free version of a subject, with `changes` applied."""
    out = dict(s)
    out.update(cachexia=0.0, pallor=0.0, periorbital=0.0, yaw=0.0, roll=0.0, glasses=0, age=45.0)
    out.update(hair_style=0, hair_colour=0, skin_tone=0.3, background_texture=0, clothing_pattern=0)
    out.update(light_strength=0.3, light_angle=-np.pi / 2)
    out.update(changes)
    return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    return (rgb.max(axis=-1) - rgb.min(axis=-1)) / np.maximum(rgb.max(axis=-1), 1e-6)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def _bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample an [H, W, 3] image at continuous pixel coordinates (pixel centres at +0.5), edge-clamped."""
    h, w = image.shape[:2]
    x = np.clip(xs - 0.5, 0, w - 1)
    y = np.clip(ys - 0.5, 0, h - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), w - 2), np.minimum(np.floor(y).astype(int), h - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def test_aligned_view_follows_ffhq_framing(subjects: list[dict]) -> None:
    # FFHQ alignment maps the crop square of side 4 x eye distance (when the eyes dominate) onto the image,
    # with the eye midpoint 0.1 eye-to-mouth above the centre: eye distance R / 4, eyes on the centre line.
    size = 64
    for s in subjects:
        _, landmarks = render_aligned(s, size)
        eye_left, eye_right, mouth = eye_mouth_points(landmarks)
        eye_distance = np.hypot(*(eye_right - eye_left))
        assert 0.22 * size <= eye_distance <= 0.2501 * size
        assert abs(0.5 * (eye_left[0] + eye_right[0]) - size / 2) < 0.03 * size
        assert 0.40 * size < eye_left[1] < 0.50 * size and 0.68 * size < mouth[1] < 0.80 * size
        np.testing.assert_allclose(
            ffhq_quad(landmarks), [[0, 0], [0, size], [size, size], [size, 0]], atol=1e-6
        )


def test_landmarks_land_on_the_rendered_features(subjects: list[dict]) -> None:
    size = 128
    for s in subjects:
        rendering, lm = render_aligned(_plain(s, eye_colour=0), size)
        labels, luma = rendering.labels, _luma(rendering.rgb)

        def at(p: np.ndarray) -> tuple[int, int]:
            return int(p[1]), int(p[0])

        centre = lm[27:48].mean(axis=0)
        for k in range(17):  # jaw points sit on the face outline: face just inside, not face just outside
            direction = (lm[k] - centre) / np.hypot(*(lm[k] - centre))
            assert labels[at(lm[k] - 2.5 * direction)] == LABEL_FACE, k
            assert labels[at(lm[k] + 2.5 * direction)] != LABEL_FACE, k
        skin = np.median(luma[labels == LABEL_FACE])
        for eye in (slice(36, 42), slice(42, 48)):  # iris and pupil at the eye centre: darker than skin
            assert luma[at(lm[eye].mean(axis=0))] < 0.6 * skin
        for k in (48, 54):  # just inside a mouth corner the lips are redder than the skin beside the mouth
            inward = lm[k] + 0.25 * (lm[51] + lm[57] - 2 * lm[k]) / 2
            outward = lm[k] + 0.25 * (2 * lm[k] - lm[51] - lm[57]) / 2 + np.array([0, -3])
            r_in, g_in = rendering.rgb[at(inward)][:2]
            r_out, g_out = rendering.rgb[at(outward)][:2]
            assert r_in / g_in > r_out / g_out
        for k in range(17, 27):  # brows (black hair here): darker than the skin
            assert luma[at(lm[k])] < 0.8 * skin
        assert labels[at(lm[30])] == LABEL_FACE  # nose tip


def test_aligning_the_unaligned_photo_reproduces_the_aligned_rendering(subjects: list[dict]) -> None:
    size = 64
    for s in subjects:
        aligned, aligned_lm = render_aligned(s, size)
        photo, photo_lm = render_unaligned(s, size)
        assert photo.rgb.shape == (2 * size, 2 * size, 3)
        affine = quad_to_square_affine(ffhq_quad(photo_lm), size)
        np.testing.assert_allclose(apply_affine(affine, photo_lm), aligned_lm, atol=1e-6)
        inverse = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
        u, v = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
        src = apply_affine(inverse, np.stack([u.ravel(), v.ravel()], axis=1))
        warped = _bilinear(photo.rgb, src[:, 0], src[:, 1]).reshape(size, size, 3)
        assert _psnr(warped, aligned.rgb) >= 30.0


def test_resolutions_render_the_same_scene() -> None:
    # A 256 px rendering box-downsampled to 32 px matches the 32 px rendering (analytic anti-aliasing).
    s = sample_factors("population", 1, seed=2).to_dict(orient="records")[0]
    small, _ = render_aligned(s, 32)
    large, _ = render_aligned(s, 256)
    pooled = large.rgb.reshape(32, 8, 32, 8, 3).mean(axis=(1, 3))
    assert _psnr(pooled, small.rgb) > 27.0
    assert small.rgb.dtype == np.float32 and small.labels.dtype == np.uint8


def test_masks_hold_every_region(subjects: list[dict]) -> None:
    rendering, lm = render_aligned(_plain(subjects[0]), 64)
    labels = rendering.labels
    assert set(np.unique(labels)) == {LABEL_BACKGROUND, LABEL_FACE, LABEL_CLOTHING, LABEL_OTHER}
    assert labels[0, 0] == LABEL_BACKGROUND
    assert labels[-1, 0] == LABEL_CLOTHING and labels[-1, -1] == LABEL_CLOTHING
    assert labels[32, 32] == LABEL_FACE and labels[6, 32] == LABEL_OTHER  # hair on top of the head


def _changed(a: Rendering, b: Rendering, tol: float = 0.01) -> np.ndarray:
    """Pixels that differ by more than `tol` (a trace of an edge pixel's neighbour does not count)."""
    return np.abs(a.rgb - b.rgb).max(axis=-1) > tol


def _near(mask: np.ndarray, pixels: int = 1) -> np.ndarray:
    """`mask` grown by `pixels` in every direction (edge pixels are shared by two regions)."""
    grown = mask.copy()
    for _ in range(pixels):
        g = grown.copy()
        g[1:] |= grown[:-1]
        g[:-1] |= grown[1:]
        g[:, 1:] |= grown[:, :-1]
        g[:, :-1] |= grown[:, 1:]
        grown = g
    return grown


@pytest.mark.parametrize("index", [0, 1])
def test_pallor_desaturates_only_the_skin(subjects: list[dict], index: int) -> None:
    base = _plain(subjects[index])
    images = [render_aligned({**base, "pallor": p}, 64)[0] for p in (0.0, 0.5, 1.0)]
    face = images[0].labels == LABEL_FACE
    sat = [float(np.mean(_saturation(im.rgb)[face])) for im in images]
    assert sat[0] > sat[1] > sat[2]
    assert sat[0] - sat[2] > 0.08
    skin = (images[0].labels == LABEL_FACE) | (images[0].labels == LABEL_OTHER)
    assert not _changed(images[0], images[2])[~_near(skin)].any()  # background and clothing untouched


def test_cachexia_narrows_and_hollows_the_face(subjects: list[dict]) -> None:
    base = _plain(subjects[2])
    healthy, lm = render_aligned(base, 64)
    wasted, _ = render_aligned({**base, "cachexia": 1.0}, 64)
    face_area = [(im.labels == LABEL_FACE).sum() for im in (healthy, wasted)]
    assert face_area[1] < 0.95 * face_area[0]
    cheeks = np.zeros((64, 64), bool)
    for k in (3, 13):  # between the jaw at mouth height and the mouth
        x = int(0.6 * lm[k][0] + 0.4 * lm[51][0])
        cheeks[int(lm[k][1]) - 2 : int(lm[k][1]) + 2, x - 1 : x + 2] = True
    both = cheeks & (healthy.labels == LABEL_FACE) & (wasted.labels == LABEL_FACE)
    assert both.sum() > 10
    assert _luma(wasted.rgb)[both].mean() < _luma(healthy.rgb)[both].mean() - 0.03


def test_periorbital_darkens_around_the_eyes_only(subjects: list[dict]) -> None:
    base = _plain(subjects[3])
    clear, lm = render_aligned(base, 64)
    dark, _ = render_aligned({**base, "periorbital": 1.0}, 64)
    under_eye = np.zeros((64, 64), bool)
    for eye in (slice(36, 42), slice(42, 48)):
        cx, cy = lm[eye].mean(axis=0)
        under_eye[int(cy) + 2 : int(cy) + 5, int(cx) - 3 : int(cx) + 4] = True
    assert _luma(dark.rgb)[under_eye].mean() < _luma(clear.rgb)[under_eye].mean() - 0.04
    changed = _changed(clear, dark)
    rows = np.nonzero(changed.any(axis=1))[0]
    assert rows.min() > lm[19, 1] - 8 and rows.max() < lm[33, 1] + 4  # from the brows to the nose base


def test_age_greys_the_hair(subjects: list[dict]) -> None:
    base = _plain(subjects[4], hair_colour=0, greying_rate=1.0)
    young, _ = render_aligned({**base, "age": 30.0}, 64)
    old, _ = render_aligned({**base, "age": 80.0}, 64)
    hair = (young.labels == LABEL_OTHER) & (old.labels == LABEL_OTHER)
    hair[32:] = False  # above the eyes: the hair, not the neck or ears
    assert _luma(old.rgb)[hair].mean() > _luma(young.rgb)[hair].mean() + 0.3


@pytest.mark.parametrize(
    ("factor", "values", "label"),
    [
        ("background_hue", (0.1, 0.6), LABEL_BACKGROUND),
        ("background_texture", (0, 2), LABEL_BACKGROUND),
        ("clothing_hue", (0.1, 0.6), LABEL_CLOTHING),
        ("clothing_pattern", (0, 1), LABEL_CLOTHING),
    ],
)
def test_nuisance_changes_only_its_region(
    subjects: list[dict], factor: str, values: tuple, label: int
) -> None:
    base = _plain(subjects[5], clothing_saturation=0.5, background_saturation=0.4)
    a, _ = render_aligned({**base, factor: values[0]}, 64)
    b, _ = render_aligned({**base, factor: values[1]}, 64)
    changed = _changed(a, b)
    region = a.labels == label
    assert changed[region].mean() > 0.5
    assert not changed[~_near(region)].any()


def test_light_direction_shades_the_face(subjects: list[dict]) -> None:
    base = _plain(subjects[0], light_strength=0.6)
    from_left, lm = render_aligned({**base, "light_angle": -np.pi + 0.01}, 64)
    from_right, _ = render_aligned({**base, "light_angle": -0.01}, 64)
    face = (from_left.labels == LABEL_FACE) & (from_right.labels == LABEL_FACE)
    left = face.copy()
    left[:, 32:] = False
    right = face & ~left
    ratio_left = _luma(from_left.rgb)[left].mean() / _luma(from_left.rgb)[right].mean()
    ratio_right = _luma(from_right.rgb)[left].mean() / _luma(from_right.rgb)[right].mean()
    assert ratio_left > 1.1 and ratio_right < 1 / 1.1


def test_glasses_change_only_the_eye_band(subjects: list[dict]) -> None:
    base = _plain(subjects[1], glasses_dark=1)
    without, lm = render_aligned(base, 64)
    with_glasses, _ = render_aligned({**base, "glasses": 1}, 64)
    rows = np.nonzero(_changed(without, with_glasses).any(axis=1))[0]
    eye_y = lm[36:48, 1].mean()
    assert len(rows) > 5 and rows.min() > eye_y - 8 and rows.max() < eye_y + 8
    ring = np.array([lm[36, 0] - 2, eye_y], int)  # the frame outside the outer eye corner is dark
    assert _luma(with_glasses.rgb)[ring[1], ring[0]] < _luma(without.rgb)[ring[1], ring[0]] - 0.1


def test_hue_of_background_follows_the_factor(subjects: list[dict]) -> None:
    base = _plain(subjects[2], background_saturation=0.6, background_value=0.8, background_texture=0)
    for hue in (0.0, 0.33, 0.66):
        rendering, _ = render_aligned({**base, "background_hue": hue}, 32)
        r, g, b = rendering.rgb[0, 0]
        measured = colorsys.rgb_to_hsv(float(r), float(g), float(b))[0]
        assert min(abs(measured - hue), 1 - abs(measured - hue)) < 0.02
