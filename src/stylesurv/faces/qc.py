"""Quality control of one photo's face: a status and a readable reason, with thresholds one can change.

Statuses, from the `qc.csv` contract:

- ``ok``: one face, aligned.
- ``multiple_faces``: several faces found; the main (largest) one was aligned.  Used downstream by default
  (a second detection is most often a false one or a face in the background).
- ``low_resolution``: the face square had to be magnified more than ``max_upsample`` to reach R x R; the
  aligned image is blurry.  Written but excluded downstream by default.
- ``extreme_pose``: the face is turned too far (see `pose_asymmetry`).  Written but excluded by default.
- ``no_face`` and ``unreadable`` (fatal): no aligned image.

Downstream stages use the patients whose status is in ``usable`` (default ``ok`` and ``multiple_faces``);
the align command records that choice in qc.csv's ``usable`` column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stylesurv.core.aligned import DEFAULT_USABLE
from stylesurv.core.geometry import eye_mouth_points

STATUSES = ("ok", "no_face", "multiple_faces", "low_resolution", "extreme_pose", "unreadable")
FATAL_STATUSES = ("no_face", "unreadable")
# DEFAULT_USABLE (ok, multiple_faces) lives with the qc.csv reader, core.aligned, which applies it too
NOSE_TIP = 30


@dataclass(frozen=True)
class QCThresholds:
    """Limits beyond which an aligned face is flagged."""

    max_upsample: float = 2.0  # most the face square may be magnified (R / square side in photo pixels)
    max_pose_asymmetry: float = 0.6  # most nose-tip offset from the eye midline, in half eye distances
    usable: tuple[str, ...] = DEFAULT_USABLE  # statuses downstream stages use

    def __post_init__(self) -> None:
        allowed = [status for status in STATUSES if status not in FATAL_STATUSES]
        wrong = sorted(set(self.usable) - set(allowed))
        if wrong:
            raise ValueError(f"usable statuses must be among {', '.join(allowed)}; got {', '.join(wrong)}")
        if self.max_upsample <= 0 or self.max_pose_asymmetry <= 0:
            raise ValueError("QC thresholds must be positive")


@dataclass(frozen=True)
class QCResult:
    """The QC verdict on one photo."""

    status: str
    reason: str

    @property
    def fatal(self) -> bool:
        return self.status in FATAL_STATUSES


def pose_asymmetry(landmarks: np.ndarray) -> float:
    """How far the face is turned: the nose tip's offset from the eye midline, in half eye distances.

    The offset is measured along the eye-to-eye axis from the eyes' midpoint, so roll does not count.
    About 0 for a frontal face; with the nose tip some 0.6 eye distances in front of the eyes (adult
    anthropometry) it grows like 1.2 tan(yaw), so 0.6 is about 27 degrees of yaw.
    """
    eye_left, eye_right, _ = eye_mouth_points(landmarks)
    axis = eye_right - eye_left
    half_distance = 0.5 * float(np.hypot(*axis))
    offset = float(
        np.dot(np.asarray(landmarks)[NOSE_TIP] - 0.5 * (eye_left + eye_right), axis / (2 * half_distance))
    )
    return abs(offset) / half_distance


def assess(n_faces: int, upsample: float, asymmetry: float, thresholds: QCThresholds) -> QCResult:
    """Status and reason for an aligned face; the most serious flag wins, the reason lists every flag."""
    flags: list[tuple[str, str]] = []
    if asymmetry > thresholds.max_pose_asymmetry:
        flags.append(
            (
                "extreme_pose",
                f"face turned: nose-tip asymmetry {asymmetry:.2f} > {thresholds.max_pose_asymmetry:g}",
            )
        )
    if upsample > thresholds.max_upsample:
        flags.append(
            (
                "low_resolution",
                f"face magnified {upsample:.2f}x to fill the image (limit {thresholds.max_upsample:g}x)",
            )
        )
    if n_faces > 1:
        flags.append(
            (
                "multiple_faces",
                f"{n_faces} faces found; the main one (see detect.main_face_first) was aligned",
            )
        )
    if not flags:
        return QCResult("ok", "")
    return QCResult(flags[0][0], "; ".join(reason for _, reason in flags))
