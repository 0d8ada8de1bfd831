"""Procedural portrait renderer: one continuous scene per subject, seen through any affine view.

A subject is one row of the factor table (`simulate.sample_factors`).  Its head is described in a *head
frame* whose unit is the distance between the eye centres, origin at the eye midpoint, y pointing down;
the head sits on a body in the *world frame* through a similarity (`head_to_world`: roll about the neck and
a head-to-body scale).  A view is an affine map from world coordinates to pixels; every pixel centre is
mapped back into the scene and every shape is drawn by its signed distance, with coverage
clip(0.5 - d / pixel_size) (analytic anti-aliasing).  Because both the aligned crop and the unaligned photo
are views of the same continuous scene, aligning the photo with its true landmarks reproduces the aligned
rendering up to resampling.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from stylesurv.core.geometry import apply_affine, ffhq_quad, quad_to_square_affine

Subject = Mapping[str, float]

LABEL_BACKGROUND, LABEL_FACE, LABEL_CLOTHING, LABEL_OTHER = 0, 1, 2, 3
NECK_PIVOT = np.array([0.0, 1.9])  # head frame point the head rolls and scales about (neck base)

SKIN_PALETTE = np.array(
    [[0.97, 0.82, 0.72], [0.86, 0.66, 0.52], [0.70, 0.50, 0.36], [0.48, 0.32, 0.22], [0.32, 0.21, 0.15]]
)
HAIR_PALETTE = np.array(
    [[0.07, 0.06, 0.06], [0.22, 0.14, 0.09], [0.42, 0.28, 0.16], [0.78, 0.64, 0.40], [0.52, 0.23, 0.12]]
)
IRIS_PALETTE = np.array([[0.30, 0.18, 0.10], [0.30, 0.45, 0.62], [0.35, 0.45, 0.28], [0.45, 0.33, 0.18]])
GREY_HAIR = np.array([0.80, 0.80, 0.79])


# ------------------------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class HeadShape:
    """Head outline and feature placement of one subject, in head-frame units."""

    cy: float  # centre of the head outline (y)
    half_height: float  # centre to chin
    half_width: float  # half the face width at the widest point
    jaw_power: float  # super-ellipse exponent of the lower half (2 round, larger square)
    cheek_narrowing: float  # fraction removed at the cheeks (cachexia)
    temple_narrowing: float  # fraction removed at the temples (cachexia)
    yaw: float  # horizontal shift of the inner features per unit depth
    eye_half_width: float
    mouth_y: float
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    nose_width: float


def beyond_face(s: Subject) -> float:
    """How far the health effects reach past the face: 0 by default (``face_bound_effects`` = 1: every pixel
    they change is in the face mask), 1 in a world drawn with ``synth --effects-beyond-face`` or without the
    column (cachexia narrows the outline and the neck, pallor tints all skin)."""
    return 1.0 - float(s.get("face_bound_effects", 0.0))


def head_shape(s: Subject) -> HeadShape:
    """The head outline and feature placement implied by a subject's factors."""
    fl = float(s["face_length"])
    c = float(s["cachexia"]) * beyond_face(s)  # the outline's share of cachexia
    return HeadShape(
        cy=0.05,
        half_height=1.65 * fl,
        half_width=1.04 * float(s["face_width"]) * (1.0 - 0.05 * c),
        jaw_power=2.0 + 1.8 * float(s["jaw_square"]),
        cheek_narrowing=0.18 * c,
        temple_narrowing=0.09 * c,
        yaw=float(s["yaw"]),
        eye_half_width=0.19,
        mouth_y=1.05 * fl,
        mouth_half_width=0.36 * float(s["mouth_width"]),
        upper_lip=0.075 * float(s["lip_fullness"]),
        lower_lip=0.095 * float(s["lip_fullness"]),
        nose_width=float(s["nose_width"]),
    )


def _outline_half_width(h: HeadShape, v: np.ndarray) -> np.ndarray:
    """Half-width scale of the outline at normalised height v = (y - cy) / half_height."""
    narrowing = h.cheek_narrowing * np.exp(-(((v - 0.32) / 0.22) ** 2)) + h.temple_narrowing * np.exp(
        -(((v + 0.3) / 0.16) ** 2)
    )
    return h.half_width * (1.0 - narrowing)


def _outline_implicit(h: HeadShape, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Implicit function of the head outline (exponent p per point): < 0 inside, 0 on the outline."""
    v = (y - h.cy) / h.half_height
    return (np.abs(x) / _outline_half_width(h, v)) ** p + np.abs(v) ** p - 1.0


def _outline_point(h: HeadShape, v: float) -> float:
    """|x| of the outline at normalised height v (0 <= v <= 1)."""
    p = h.jaw_power
    return float(_outline_half_width(h, np.array(v)) * max(1.0 - abs(v) ** p, 0.0) ** (1.0 / p))


def _sagitta(x: np.ndarray | float, half_chord: float, height: float) -> np.ndarray:
    """Height above the chord of a circular arc through (+-half_chord, 0) with apex height `height`."""
    r = (half_chord**2 + height**2) / (2.0 * height)
    return np.sqrt(np.maximum(r * r - np.square(x), 0.0)) - (r - height)


def _brow_points(h: HeadShape, side: int) -> np.ndarray:
    """Five brow points from the inner end outwards; side -1 is the image-left brow."""
    t = np.linspace(0.0, 1.0, 5)
    x = side * (0.16 + 0.66 * t) + 1.0 * h.yaw
    y = -0.27 - 0.10 * np.sin(np.pi * (0.25 + 0.6 * t))
    return np.stack([x, y], axis=1)


def face_landmarks(s: Subject) -> np.ndarray:
    """The 68 iBUG 300-W landmarks of a subject in its head frame [68, 2]."""
    h = head_shape(s)
    pts = np.zeros((68, 2))
    v0 = (0.02 - h.cy) / h.half_height
    for k in range(9):
        v = v0 + (1.0 - v0) * np.sin(0.5 * np.pi * k / 8.0)
        x = _outline_point(h, v)
        y = h.cy + h.half_height * v
        pts[k] = (-x, y)
        pts[16 - k] = (x, y)
    pts[17:22] = _brow_points(h, -1)[::-1]  # image-left brow, outer to inner
    pts[22:27] = _brow_points(h, 1)  # image-right brow, inner to outer
    nose_y = np.array([0.08, 0.24, 0.40, 0.56]) * (h.mouth_y / 1.05)
    pts[27:31] = np.stack([h.yaw * np.array([1.1, 1.3, 1.5, 1.8]), nose_y], axis=1)
    nostril_x = np.array([-0.17, -0.09, 0.0, 0.09, 0.17]) * h.nose_width + 1.4 * h.yaw
    nostril_y = np.array([0.61, 0.635, 0.65, 0.635, 0.61]) * (h.mouth_y / 1.05)
    pts[31:36] = np.stack([nostril_x, nostril_y], axis=1)
    a = h.eye_half_width
    for first, ex in ((36, -0.5), (42, 0.5)):
        ex = ex + h.yaw
        up = float(_sagitta(a / 3.0, a, 0.1))
        low = float(_sagitta(a / 3.0, a, 0.065))
        outer, inner = (ex - a, ex + a) if first == 36 else (ex + a, ex - a)
        sgn = 1.0 if first == 36 else -1.0  # walk clockwise in the image: corner, upper, corner, lower
        pts[first : first + 6] = [
            (outer, 0.0),
            (ex - sgn * a / 3.0, -up),
            (ex + sgn * a / 3.0, -up),
            (inner, 0.0),
            (ex + sgn * a / 3.0, low),
            (ex - sgn * a / 3.0, low),
        ]
    mx, my, mw = h.yaw, h.mouth_y, h.mouth_half_width
    fx = np.array([-1.0, -0.6, -0.25, 0.0, 0.25, 0.6, 1.0]) * mw
    upper = my - _sagitta(fx, mw, h.upper_lip)
    upper[3] += 0.2 * h.upper_lip  # cupid's bow dip
    lower = my + _sagitta(fx, mw, h.lower_lip)
    pts[48:55] = np.stack([mx + fx, upper], axis=1)
    pts[55:60] = np.stack([mx + fx[5:0:-1], lower[5:0:-1]], axis=1)
    ix = np.array([-0.85, -0.3, 0.0, 0.3, 0.85]) * mw
    line = my + _mouth_line_offset(ix, mw)
    pts[60:65] = np.stack([mx + ix, line], axis=1)
    pts[65:68] = np.stack([mx + ix[3:0:-1], line[3:0:-1]], axis=1)
    return pts


def _mouth_line_offset(x: np.ndarray, half_width: float) -> np.ndarray:
    """The closed-mouth line dips 0.015 below the corners' line at the centre (a faint smile curve)."""
    return 0.015 * (1.0 - (x / half_width) ** 2) - 0.01


def head_to_world(s: Subject) -> np.ndarray:
    """2x3 similarity from head frame to world frame: roll and scale about the neck pivot."""
    scale, roll = float(s["head_scale"]), float(s["roll"])
    rot = scale * np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    return np.concatenate([rot, (NECK_PIVOT - rot @ NECK_PIVOT)[:, None]], axis=1)


def world_landmarks(s: Subject) -> np.ndarray:
    """The 68 landmarks in the world frame [68, 2]."""
    return apply_affine(head_to_world(s), face_landmarks(s))


def aligned_affine(s: Subject, size: int) -> np.ndarray:
    """World -> aligned-pixel map: the FFHQ crop square of the subject's landmarks onto size x size."""
    return quad_to_square_affine(ffhq_quad(world_landmarks(s)), size)


def photo_affine(s: Subject, canvas: int) -> np.ndarray:
    """World -> unaligned-photo-pixel similarity: the crop square placed, scaled and rotated in the canvas."""
    to_unit = quad_to_square_affine(ffhq_quad(world_landmarks(s)), 1)
    side = float(s["photo_scale"]) * canvas
    angle = float(s["photo_angle"])
    rot = side * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([float(s["photo_cx"]), float(s["photo_cy"])]) * canvas
    lin = rot @ to_unit[:, :2]
    return np.concatenate([lin, (rot @ (to_unit[:, 2] - 0.5) + centre)[:, None]], axis=1)


# ------------------------------------------------------------------------------------------- primitives
def _coverage(d: np.ndarray, pix: float) -> np.ndarray:
    """Fraction of a pixel of width `pix` inside a shape with signed distance d (box filter, linear)."""
    return np.clip(0.5 - d / pix, 0.0, 1.0)


def _gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _ellipse_sdf(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (first-order, exact on the axes)."""
    px, py = (x - cx) / a, (y - cy) / b
    k0 = np.sqrt(px * px + py * py)
    k1 = np.sqrt((px / a) ** 2 + (py / b) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _circle_sdf(x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return np.hypot(x - cx, y - cy) - r


def _segment_distance(x: np.ndarray, y: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Distance to the segment p-q, and the position along it (0 at p, 1 at q)."""
    d = q - p
    t = np.clip(((x - p[0]) * d[0] + (y - p[1]) * d[1]) / float(d @ d), 0.0, 1.0)
    return np.hypot(x - p[0] - t * d[0], y - p[1] - t * d[1])


def _lens_sdf(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, half: float, up: float, down: float
) -> tuple[np.ndarray, np.ndarray]:
    """Almond shape between an upper and a lower circular arc through (cx +- half, cy).

    Returns the shape's distance and the distance to the upper arc's circle (for lid lines).
    """
    ru = (half**2 + up**2) / (2 * up)
    rl = (half**2 + down**2) / (2 * down)
    d_up = _circle_sdf(x, y, cx, cy + ru - up, ru)
    d_low = _circle_sdf(x, y, cx, cy - rl + down, rl)
    return np.maximum(d_up, d_low), d_up


def _band_limit(freq: float, pix: float) -> float:
    """Amplitude left of a sinusoid of angular frequency `freq` after a pixel-wide box filter."""
    return float(np.exp(-0.5 * (0.45 * freq * pix) ** 2))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))))


class _Canvas:
    """Back-to-front compositing of colour and of the label weights."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self.labels = np.zeros((rgb.shape[0], 4))
        self.labels[:, LABEL_BACKGROUND] = 1.0

    def over(
        self, colour: np.ndarray, alpha: np.ndarray, label: int | None, idx: np.ndarray | None = None
    ) -> None:
        """Composite `colour` ([3] or [K, 3]) with coverage `alpha` [K] onto pixels `idx` (None: all)."""
        a = alpha[:, None]
        if idx is None:
            self.rgb += (colour - self.rgb) * a
            if label is not None:
                self.labels *= 1.0 - a
                self.labels[:, label] += alpha
            return
        self.rgb[idx] += (colour - self.rgb[idx]) * a
        if label is not None:
            labels = self.labels[idx] * (1.0 - a)
            labels[:, label] += alpha
            self.labels[idx] = labels


def _window(x: np.ndarray, y: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Indices of the points inside the box [x0, x1] x [y0, y1]: small features are drawn only there."""
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


@dataclass(frozen=True)
class Rendering:
    """A rendered view: colour in [0, 1] [H, W, 3] (float32) and the label image [H, W] (uint8)."""

    rgb: np.ndarray
    labels: np.ndarray


# ---------------------------------------------------------------------------------------------- colours
def skin_colour(s: Subject, pallor_weight: float = 1.0) -> np.ndarray:
    """Base skin RGB after pallor (times ``pallor_weight``): desaturated towards a grey-yellow of the same
    luminance."""
    t = float(s["skin_tone"]) * (len(SKIN_PALETTE) - 1)
    i = min(int(t), len(SKIN_PALETTE) - 2)
    base = SKIN_PALETTE[i] * (1 - (t - i)) + SKIN_PALETTE[i + 1] * (t - i)
    base = base * (1.0 + 0.04 * float(s["skin_warmth"]) * np.array([1.0, 0.0, -1.0]))
    lum = float(base @ np.array([0.299, 0.587, 0.114]))
    pale = lum * np.array([1.02, 1.0, 0.84])
    return base + 0.8 * float(s["pallor"]) * pallor_weight * (pale - base)


def hair_colour(s: Subject, greying: float = 1.0) -> np.ndarray:
    """Hair RGB, greying with age (brows grey less: pass greying < 1)."""
    grey = np.clip((float(s["age"]) - 38.0) / 35.0 * float(s["greying_rate"]), 0.0, 1.0) * greying
    return HAIR_PALETTE[int(s["hair_colour"])] * (1 - 0.92 * grey) + GREY_HAIR * 0.92 * grey


# --------------------------------------------------------------------------------------------- renderer
def render(s: Subject, world_to_pixel: np.ndarray, width: int, height: int) -> Rendering:
    """Render a subject through the world -> pixel affine map into a width x height image."""
    inv = np.linalg.inv(np.vstack([world_to_pixel, [0.0, 0.0, 1.0]]))[:2]
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    u, v = u.ravel(), v.ravel()
    wx, wy = _affine_xy(inv, u, v)
    pix_w = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    w2h = np.linalg.inv(np.vstack([head_to_world(s), [0.0, 0.0, 1.0]]))[:2]
    hx, hy = _affine_xy(w2h, wx, wy)
    pix_h = pix_w / float(s["head_scale"])
    light = _light_vector(s)

    canvas = _Canvas(_background(s, wx, wy, pix_w))
    h = head_shape(s)
    if int(s["hair_style"]) == 1:
        _draw_long_hair(canvas, s, h, hx, hy, pix_h, light)
    _draw_neck(canvas, s, h, hx, hy, pix_h, light)
    _draw_body(canvas, s, wx, wy, pix_w, light)
    if int(s["hair_style"]) != 1:
        _draw_ears(canvas, s, h, hx, hy, pix_h, light)
    _draw_face(canvas, s, h, hx, hy, pix_h, light)
    _draw_hair_cap(canvas, s, h, hx, hy, pix_h, light)
    if int(s["glasses"]):
        _draw_glasses(canvas, s, h, hx, hy, pix_h)
    rgb = np.clip(canvas.rgb, 0.0, 1.0).reshape(height, width, 3).astype(np.float32)
    labels = np.argmax(canvas.labels, axis=1).reshape(height, width).astype(np.uint8)
    return Rendering(rgb=rgb, labels=labels)


def _affine_xy(affine: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = [float(v) for v in affine.ravel()]
    return a[0] * x + a[1] * y + a[2], a[3] * x + a[4] * y + a[5]


def _light_vector(s: Subject) -> np.ndarray:
    a = float(s["light_angle"])
    vec = np.array([0.75 * np.cos(a), 0.75 * np.sin(a), 0.66])
    return vec / np.linalg.norm(vec)


def _lambert(nx: np.ndarray, ny: np.ndarray, light: np.ndarray, strength: float) -> np.ndarray:
    """Shading factor ~1 on average: ambient plus a diffuse term of the pseudo-normal (nx, ny, nz)."""
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    diffuse = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0.0, 1.0)
    return (1.0 - strength) + strength * 1.35 * diffuse


def _background(s: Subject, x: np.ndarray, y: np.ndarray, pix: float) -> np.ndarray:
    base = _hsv(float(s["background_hue"]), float(s["background_saturation"]), float(s["background_value"]))
    phase = float(s["background_phase"])
    kind = int(s["background_texture"])
    if kind == 0:
        field = 0.08 * (x * np.cos(phase) + y * np.sin(phase))
    elif kind == 1:
        field = 0.09 * np.sin(2.4 * x + phase) * _band_limit(2.4, pix)
    else:
        field = 0.07 * (
            np.sin(1.7 * x + phase) * np.sin(1.3 * y + 2 * phase) + np.sin(2.9 * x - 1.1 * y + phase)
        )
    vignette = 1.0 - 0.03 * ((x / 2.5) ** 2 + ((y - 0.2) / 2.5) ** 2)
    tone = (1.0 + field) * vignette
    return np.clip(base[None, :] * tone[:, None], 0.0, 1.0)


def _draw_body(
    canvas: _Canvas, s: Subject, x: np.ndarray, y: np.ndarray, pix: float, light: np.ndarray
) -> None:
    """Shoulders (world frame): skin in the neckline opening, clothing elsewhere."""
    ax = np.abs(x)
    bump = 0.55 * np.exp(-(((ax - 0.3) / 0.7) ** 2))
    top = 1.6 + bump + 0.25 * np.maximum(ax - 2.2, 0.0) ** 2
    slope = -bump * 2.0 * (ax - 0.3) / 0.49 + 0.5 * np.maximum(ax - 2.2, 0.0)
    d_body = (top - y) / np.sqrt(1.0 + slope * slope)
    shade = _lambert(
        np.clip(x / 2.6, -0.9, 0.9), np.full_like(x, -0.2), light, 0.5 * float(s["light_strength"])
    )
    skin = skin_colour(s, beyond_face(s)) * 0.9
    if int(s["neckline"]) == 0:
        d_open = _ellipse_sdf(x, y, 0.0, 1.98, 0.55, 0.3)
    else:
        d_open = np.maximum((np.abs(x) - 0.55 * (1.0 - (y - 1.8) / 0.75)) * 0.8, 1.8 - y)
    canvas.over(skin[None, :] * shade[:, None], _coverage(np.maximum(d_body, d_open), pix), LABEL_OTHER)
    d_cloth = np.maximum(d_body, -d_open)
    colour = _hsv(float(s["clothing_hue"]), float(s["clothing_saturation"]), float(s["clothing_value"]))
    ang = float(s["clothing_pattern_angle"])
    cu = x * np.cos(ang) + y * np.sin(ang)
    cv = -x * np.sin(ang) + y * np.cos(ang)
    pattern = int(s["clothing_pattern"])
    freq = 9.0
    if pattern == 1:
        tex = 0.5 + 0.5 * np.sin(freq * cu) * _band_limit(freq, pix)
    elif pattern == 2:
        tex = 0.5 + 0.25 * (np.sin(freq * cu) + np.sin(freq * cv)) * _band_limit(freq, pix)
    elif pattern == 3:
        period = 2 * np.pi / freq
        du = (cu / period) % 1.0 - 0.5
        dv = (cv / period) % 1.0 - 0.5
        tex = 1.0 - _coverage(np.hypot(du, dv) * period - 0.22 * period, max(pix, 0.25 * period))
    else:
        tex = np.zeros_like(x)
    accent = colour * 0.55 + 0.45 * np.array([0.95, 0.93, 0.9]) * (colour.mean() < 0.5)
    cloth = colour[None, :] * (1 - tex[:, None]) + accent[None, :] * tex[:, None]
    shade = _lambert(np.clip(x / 2.4, -0.9, 0.9), np.full_like(x, -0.3), light, float(s["light_strength"]))
    fold = 1.0 - 0.12 * np.exp(-(((np.abs(x) - 0.75) / 0.2) ** 2)) * np.clip((y - 1.9) / 0.4, 0, 1)
    canvas.over(cloth * (shade * fold)[:, None], _coverage(d_cloth, pix), LABEL_CLOTHING)


def _draw_long_hair(
    canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float, light: np.ndarray
) -> None:
    vol = float(s["hair_volume"])
    half = h.half_width + vol + 0.12
    top = h.cy - h.half_height - vol
    bottom = 2.4
    idx = _window(x, y, -half - 0.05, half + 0.05, top - 0.05, bottom + 0.05)
    x, y = x[idx], y[idx]
    d_box = np.maximum(np.abs(x) - half, np.maximum(top - y, y - bottom))
    d_round = _ellipse_sdf(x, y, 0.0, h.cy, half, h.half_height + vol)
    d = np.where(y < h.cy, d_round, d_box)
    d = np.maximum(d, y - bottom + 0.25 * (1.0 - (x / half) ** 2))  # uneven ends
    colour = hair_colour(s) * 0.8
    shade = _lambert(np.clip(x / (half + 0.2), -0.95, 0.95), np.clip((y - h.cy) / 3.0, -0.9, 0.9), light, 0.6)
    strands = 1.0 + 0.06 * np.sin(30.0 * x + 1.5 * np.sin(3.0 * y)) * _band_limit(30.0, pix)
    canvas.over(colour[None, :] * (shade * strands)[:, None], _coverage(d, pix), LABEL_OTHER, idx)


def _draw_neck(
    canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float, light: np.ndarray
) -> None:
    c = float(s["cachexia"]) * beyond_face(s)
    half = 0.5 * float(s["face_width"]) * (1.0 - 0.15 * c)
    idx = _window(x, y, -half - 0.05, half + 0.05, 0.55, 2.75)
    x, y = x[idx], y[idx]
    d = np.maximum(np.abs(x) - half, np.maximum(0.6 - y, y - 2.7))
    chin = h.cy + h.half_height
    shadow = 1.0 - 0.45 * np.exp(-0.5 * ((y - chin - 0.05) / 0.18) ** 2)
    tendon = 1.0 - 0.18 * c * _gauss(np.abs(x), y, 0.22, chin + 0.35, 0.05, 0.25)
    shade = _lambert(
        np.clip(x / (half * 1.2), -0.95, 0.95), np.zeros_like(x), light, float(s["light_strength"])
    )
    colour = skin_colour(s, beyond_face(s)) * 0.9
    canvas.over(colour[None, :] * (shade * shadow * tendon)[:, None], _coverage(d, pix), LABEL_OTHER, idx)


def _draw_ears(
    canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float, light: np.ndarray
) -> None:
    ex = _outline_point(h, (0.22 - h.cy) / h.half_height) - 0.02
    skin = skin_colour(s, beyond_face(s)) * np.array([0.97, 0.88, 0.86])
    for side in (-1.0, 1.0):
        idx = _window(x, y, side * ex - 0.2, side * ex + 0.2, -0.1, 0.55)
        xs, ys = x[idx], y[idx]
        d = _ellipse_sdf(xs, ys, side * ex, 0.22, 0.14, 0.26)
        inner = 1.0 - 0.3 * _gauss(xs, ys, side * (ex + 0.03), 0.24, 0.04, 0.12)
        shade = _lambert(np.full_like(xs, side * 0.7), np.zeros_like(xs), light, float(s["light_strength"]))
        canvas.over(skin[None, :] * (inner * shade)[:, None], _coverage(d, pix), LABEL_OTHER, idx)


def _face_distance(h: HeadShape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance to the head outline from its implicit function and a numerical gradient."""
    p = np.where(y < h.cy, 2.0, h.jaw_power)  # held fixed across the finite difference
    f = _outline_implicit(h, x, y, p)
    e = 1e-3
    gx = (_outline_implicit(h, x + e, y, p) - f) / e
    gy = (_outline_implicit(h, x, y + e, p) - f) / e
    return f / np.maximum(np.hypot(gx, gy), 1e-6)


def _draw_face(
    canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float, light: np.ndarray
) -> None:
    """Skin of the head with its shading, then brows, eyes, nose and mouth."""
    top, bottom = h.cy - h.half_height - 0.05, h.cy + h.half_height + 0.05
    idx = _window(x, y, -h.half_width - 0.05, h.half_width + 0.05, top, bottom)
    full_x, full_y = x, y
    x, y = x[idx], y[idx]
    c, o = float(s["cachexia"]), float(s["periorbital"])
    age_lines = float(np.clip((float(s["age"]) - 35.0) / 45.0, 0.0, 1.0))
    yaw = h.yaw
    skin = skin_colour(s)
    nx = np.clip(x / (h.half_width * 1.05), -0.98, 0.98)
    ny = np.clip((y - h.cy) / (h.half_height * 1.1), -0.98, 0.98)
    tone = _lambert(nx, ny, light, float(s["light_strength"]))
    ax = np.abs(x - yaw)
    # Anatomy every face has: eye sockets, nose sides, under nose, under lip, cheek blush.
    tone *= 1.0 - 0.13 * _gauss(ax, y, 0.5, -0.13, 0.24, 0.09)
    tone *= 1.0 - 0.12 * _gauss(ax, y, 0.13, 0.35, 0.05, 0.2) * (0.6 + 0.4 * np.sign(x - yaw) * -light[0])
    tone *= 1.0 - 0.22 * _gauss(x, y, 1.6 * yaw, 0.7, 0.13, 0.035)
    tone *= 1.0 - 0.18 * _gauss(x, y, yaw, h.mouth_y + 0.22, 0.16, 0.05)
    tone *= 1.0 + 0.06 * _gauss(x, y, 1.8 * yaw, 0.5, 0.06, 0.07)
    # Cachexia: hollow cheeks and temples with a prominent cheekbone above the hollow.
    tone *= 1.0 - 0.45 * c * _gauss(np.abs(x), y, 0.74, 0.74, 0.22, 0.3)
    tone *= 1.0 - 0.42 * c * _gauss(np.abs(x), y, 0.9, -0.4, 0.16, 0.22)
    tone *= 1.0 + 0.14 * c * _gauss(np.abs(x), y, 0.7, 0.32, 0.2, 0.07)
    # Age: forehead lines and nasolabial folds, drawn at least a pixel wide with constant ink.
    width = max(0.018, 0.6 * pix)
    ink = 0.018 / width
    for k in range(3):
        yl = -0.52 - 0.12 * k + 0.05 * (x / 0.5) ** 2
        tone *= 1.0 - 0.16 * age_lines * ink * np.exp(-(((y - yl) / width) ** 2)) * np.exp(-((x / 0.45) ** 4))
    for side in (-1.0, 1.0):
        p = np.array([side * 0.22 + 1.4 * yaw, 0.62])
        q = np.array([side * (h.mouth_half_width + 0.1) + yaw, h.mouth_y + 0.08])
        dist = _segment_distance(x, y, p, q)
        tone *= 1.0 - 0.12 * (0.1 + age_lines) * ink * np.exp(-((dist / width) ** 2))
    colour = skin[None, :] * tone[:, None]
    blush = 0.07 * (1.0 - float(s["pallor"])) * (1.0 - 0.8 * c) * _gauss(ax, y, 0.58, 0.55, 0.2, 0.15)
    colour = colour + blush[:, None] * np.array([0.5, -0.25, -0.2])[None, :]
    # Periorbital darkness: a purple-brown shadow around and below the eyes.
    peri = o * _gauss(ax, y, 0.5, 0.07, 0.25, 0.12)
    colour = colour * (1.0 - 0.55 * peri[:, None] * np.array([0.85, 1.0, 0.9])[None, :])
    canvas.over(colour, _coverage(_face_distance(h, x, y), pix), LABEL_FACE, idx)
    _draw_brows(canvas, s, h, full_x, full_y, pix)
    _draw_eyes(canvas, s, h, full_x, full_y, pix)
    _draw_nose(canvas, s, h, full_x, full_y, pix)
    _draw_mouth(canvas, s, h, full_x, full_y, pix)


def _draw_brows(canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float) -> None:
    colour = hair_colour(s, greying=0.6) * 0.85
    thick = float(s["brow_thickness"])
    radius = np.linspace(0.05, 0.025, 4) * thick
    for side in (-1, 1):
        pts = _brow_points(h, side)
        idx = _window(x, y, pts[:, 0].min() - 0.1, pts[:, 0].max() + 0.1, -0.5, -0.2)
        xs, ys = x[idx], y[idx]
        d = np.min([_segment_distance(xs, ys, pts[k], pts[k + 1]) - radius[k] for k in range(4)], axis=0)
        canvas.over(colour, 0.9 * _coverage(d, max(pix, 0.03)), LABEL_FACE, idx)


def _draw_eyes(canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float) -> None:
    a = h.eye_half_width
    iris = IRIS_PALETTE[int(s["eye_colour"])]
    white = np.array([0.93, 0.91, 0.88]) * (1.0 - 0.15 * float(s["pallor"]) * np.array([0.0, 0.0, 1.0]))
    for ex in (-0.5 + h.yaw, 0.5 + h.yaw):
        idx = _window(x, y, ex - a - 0.05, ex + a + 0.05, -0.15, 0.12)
        xs, ys = x[idx], y[idx]
        d_eye, d_up = _lens_sdf(xs, ys, ex, 0.0, a, 0.1, 0.065)
        canvas.over(white, _coverage(d_eye, pix), LABEL_FACE, idx)
        ix = ex + 0.3 * h.yaw
        d_iris = np.maximum(_circle_sdf(xs, ys, ix, 0.0, 0.082), d_eye)
        canvas.over(iris, _coverage(d_iris, pix), LABEL_FACE, idx)
        d_pupil = np.maximum(_circle_sdf(xs, ys, ix, 0.0, 0.035), d_eye)
        canvas.over(np.array([0.03, 0.03, 0.03]), _coverage(d_pupil, pix), LABEL_FACE, idx)
        d_glint = _circle_sdf(xs, ys, ix - 0.03, -0.03, 0.016)
        canvas.over(np.ones(3), 0.8 * _coverage(d_glint, pix), LABEL_FACE, idx)
        lid = np.maximum(np.maximum(np.abs(d_up) - 0.01, np.abs(xs - ex) - a), ys)
        canvas.over(np.array([0.12, 0.08, 0.07]), 0.85 * _coverage(lid, max(pix, 0.02)), LABEL_FACE, idx)


def _draw_nose(canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float) -> None:
    colour = skin_colour(s) * 0.45
    scale = h.mouth_y / 1.05
    centre = 1.4 * h.yaw
    idx = _window(x, y, centre - 0.3, centre + 0.3, 0.4 * scale, 0.75 * scale)
    xs, ys = x[idx], y[idx]
    for side in (-1.0, 1.0):
        d = _ellipse_sdf(xs, ys, side * 0.085 * h.nose_width + centre, 0.625 * scale, 0.045, 0.022)
        canvas.over(colour, 0.8 * _coverage(d, max(pix, 0.02)), LABEL_FACE, idx)
        ala = np.abs(_ellipse_sdf(xs, ys, side * 0.12 * h.nose_width + centre, 0.57 * scale, 0.07, 0.07))
        ala = np.maximum(ala - 0.012, -(side * (xs - centre) - 0.12 * h.nose_width))
        canvas.over(colour * 1.3, 0.35 * _coverage(ala, max(pix, 0.02)), LABEL_FACE, idx)


def _draw_mouth(canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float) -> None:
    skin = skin_colour(s)
    lips = skin * np.array([0.92, 0.62, 0.62])
    lips = lips + 0.6 * float(s["pallor"]) * (skin * 0.95 - lips)
    mx, my, mw = h.yaw, h.mouth_y, h.mouth_half_width
    idx = _window(x, y, mx - mw - 0.05, mx + mw + 0.05, my - h.upper_lip - 0.05, my + h.lower_lip + 0.05)
    xs, ys = x[idx], y[idx]
    d_upper, _ = _lens_sdf(xs, ys, mx, my, mw, h.upper_lip, 0.02)
    d_lower, _ = _lens_sdf(xs, ys, mx, my, mw, 0.02, h.lower_lip)
    canvas.over(lips * 0.88, _coverage(d_upper, pix), LABEL_FACE, idx)
    shine = 1.0 + 0.12 * _gauss(xs, ys, mx, my + 0.5 * h.lower_lip, 0.12, 0.03)
    canvas.over(lips[None, :] * shine[:, None], _coverage(d_lower, pix), LABEL_FACE, idx)
    line = np.abs(ys - my - _mouth_line_offset(xs - mx, mw)) - 0.008
    line = np.maximum(line, np.abs(xs - mx) - 0.95 * mw)
    canvas.over(lips * 0.4, 0.9 * _coverage(line, max(pix, 0.02)), LABEL_FACE, idx)


def _draw_hair_cap(
    canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float, light: np.ndarray
) -> None:
    vol = float(s["hair_volume"]) * (0.6 if int(s["hair_style"]) == 2 else 1.0)
    style = int(s["hair_style"])
    reach = h.half_width + vol + 0.05
    idx = _window(x, y, -reach, reach, h.cy - 0.03 - h.half_height - vol - 0.05, 0.1)
    x, y = x[idx], y[idx]
    part = float(s["hair_part"])
    crown = h.cy - h.half_height + 0.35
    theta = np.arctan2(x - part, y - crown)
    r = np.maximum(np.hypot(x - part, y - crown), 0.15)
    d_outer = _ellipse_sdf(x, y, 0.0, h.cy - 0.03, h.half_width + vol, h.half_height + vol)
    d_outer = d_outer - 0.025 * np.sin(9.0 * theta + 5.0 * part)  # tufts along the outline
    top = h.cy - h.half_height
    line_y = top + (0.46 if style != 2 else 0.22) * h.half_height
    hairline = line_y + 0.3 * (x / h.half_width) ** 2 + 0.06 * np.tanh((x - part) / 0.4)
    if style == 1:  # fringe swept to one side
        hairline = hairline + 0.12 * np.exp(-(((x + part) / 0.45) ** 2))
    d_line = (y - hairline) / np.sqrt(1.0 + (0.6 * x / h.half_width**2) ** 2)
    side_y = 0.02 if style != 2 else -0.15
    d_side = np.maximum(0.8 * h.half_width - np.abs(x), y - side_y + 0.6 * (np.abs(x) - 0.8 * h.half_width))
    d = np.maximum(d_outer, np.minimum(d_line, d_side))
    if style == 2:  # receding: thin crown
        d = np.maximum(d, -_ellipse_sdf(x, y, 0.0, top + 0.5, 0.55, 0.6) - 0.0)
    colour = hair_colour(s)
    nx = np.clip(x / (h.half_width + vol), -0.95, 0.95)
    ny = np.clip((y - h.cy) / (h.half_height + vol), -0.95, 0.95)
    shade = _lambert(nx, ny, light, 0.7)
    strand_freq = 40.0 / r  # strands radiate from the crown
    strands = 1.0 + 0.07 * np.sin(40.0 * theta) * np.exp(-0.5 * (0.45 * strand_freq * pix) ** 2)
    canvas.over(colour[None, :] * (shade * strands)[:, None], _coverage(d, pix), LABEL_OTHER, idx)


def _draw_glasses(
    canvas: _Canvas, s: Subject, h: HeadShape, x: np.ndarray, y: np.ndarray, pix: float
) -> None:
    frame = np.array([0.08, 0.07, 0.07]) if int(s["glasses_dark"]) else np.array([0.62, 0.6, 0.55])
    idx = _window(x, y, -h.half_width - 0.05, h.half_width + 0.05, -0.25, 0.3)
    xs, ys = x[idx], y[idx]
    rings = []
    for ex in (-0.5 + h.yaw, 0.5 + h.yaw):
        d_lens = _ellipse_sdf(xs, ys, ex, 0.03, 0.29, 0.2)
        lens_alpha = 0.12 * _coverage(d_lens, pix) * (1.0 + _gauss(xs, ys, ex - 0.1, -0.05, 0.08, 0.05))
        canvas.over(np.array([0.92, 0.95, 1.0]), lens_alpha, None, idx)
        rings.append(np.abs(d_lens) - 0.022)
    bridge = (
        _segment_distance(xs, ys, np.array([-0.21 + h.yaw, -0.01]), np.array([0.21 + h.yaw, -0.01])) - 0.02
    )
    arms = [
        _segment_distance(xs, ys, np.array([side * 0.79 + h.yaw, 0.0]), np.array([side * h.half_width, 0.02]))
        - 0.02
        for side in (-1.0, 1.0)
    ]
    d = np.min([*rings, bridge, *arms], axis=0)
    canvas.over(frame, _coverage(d, max(pix, 0.035)), None, idx)


# ------------------------------------------------------------------------------------------------ views
def render_aligned(s: Subject, size: int) -> tuple[Rendering, np.ndarray]:
    """The FFHQ-aligned view at size x size, and the landmarks in aligned pixel coordinates [68, 2]."""
    affine = aligned_affine(s, size)
    return render(s, affine, size, size), apply_affine(affine, world_landmarks(s))


def render_unaligned(s: Subject, size: int) -> tuple[Rendering, np.ndarray]:
    """The unaligned photo (a 2 size x 2 size canvas) and its true landmarks in photo pixels [68, 2]."""
    canvas = 2 * size
    affine = photo_affine(s, canvas)
    return render(s, affine, canvas, canvas), apply_affine(affine, world_landmarks(s))
