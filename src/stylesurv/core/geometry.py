"""Landmark geometry shared by the renderer and the aligner: the 68-point layout and the FFHQ crop square.

The 68 points follow the iBUG 300-W order (0-16 jaw, 17-21 and 22-26 brows, 27-35 nose, 36-41 and 42-47
eyes, 48-67 mouth).  Coordinates are (x, y) in pixels, y pointing down.  "Left eye" is points 36-41, the
eye on the image's left.
"""

from __future__ import annotations

import numpy as np

EYE_LEFT = slice(36, 42)
EYE_RIGHT = slice(42, 48)
MOUTH_LEFT = 48
MOUTH_RIGHT = 54


def eye_mouth_points(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left eye centre, right eye centre and mouth centre (mean of the mouth corners) of [68, 2] points."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks of shape (68, 2), got {lm.shape}")
    eye_left = lm[EYE_LEFT].mean(axis=0)
    eye_right = lm[EYE_RIGHT].mean(axis=0)
    mouth = 0.5 * (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT])
    return eye_left, eye_right, mouth


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The oriented crop square of the FFHQ alignment procedure, as 4 corners [4, 2].

    Corners are in the order top-left, bottom-left, bottom-right, top-right of the aligned image.  The
    square's half-side is max(2 x eye distance, 1.8 x eye-to-mouth distance) along the direction that
    combines eye-to-eye and (rotated) eye-to-mouth vectors; its centre sits 0.1 eye-to-mouth below the
    eye midpoint (Karras et al., FFHQ dataset script; facts only, code our own).
    """
    eye_left, eye_right, mouth = eye_mouth_points(landmarks)
    eye_avg = 0.5 * (eye_left + eye_right)
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_to_square_affine(quad: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 affine map from photo pixel coordinates to aligned coordinates of a size x size image.

    Pixel centres are at integer + 0.5 in both frames: the quad's top-left corner maps to (0, 0) and its
    bottom-right corner to (size, size).
    """
    quad = np.asarray(quad, dtype=np.float64)
    src = np.stack([quad[0], quad[1], quad[3]])  # top-left, bottom-left, top-right
    dst = np.array([[0.0, 0.0], [0.0, size], [size, 0.0]])
    src_h = np.concatenate([src, np.ones((3, 1))], axis=1)
    return np.linalg.solve(src_h, dst).T  # [2, 3]


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine map to [K, 2] points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ affine[:, :2].T + affine[:, 2]


def _mirror_order() -> np.ndarray:
    """Index of each point's mirror partner in the 68-point layout (left and right swap)."""
    pairs = [(i, 16 - i) for i in range(17)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(27 + i, 27 + i) for i in range(4)]  # nose bridge
    pairs += [(31 + i, 35 - i) for i in range(5)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48 + i, 54 - i) for i in range(7)] + [(55, 59), (56, 58), (57, 57)]  # outer lips
    pairs += [(60, 64), (61, 63), (62, 62), (65, 67), (66, 66)]  # inner lips
    order = np.arange(68)
    for a, b in pairs:
        order[a], order[b] = b, a
    return order


MIRROR_ORDER = _mirror_order()


def mirror_landmarks(landmarks: np.ndarray, width: float) -> np.ndarray:
    """The 68 landmarks of the left-right mirrored image of the given width (points relabelled, so that
    e.g. point 36 is again the outer corner of the image-left eye)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    mirrored = np.stack([width - lm[:, 0], lm[:, 1]], axis=1)
    return mirrored[MIRROR_ORDER]
