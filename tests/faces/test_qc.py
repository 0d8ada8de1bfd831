"""QC verdicts: pose asymmetry against its closed form, and which flag wins."""

from __future__ import annotations

import numpy as np
import pytest

from stylesurv.faces.qc import QCThresholds, assess, pose_asymmetry


def _turned_face(yaw_degrees: float, roll_degrees: float = 0.0) -> np.ndarray:
    """68 points of a rigid 3-D face model seen orthographically after yaw (about the vertical axis) and roll.

    Eye centres at x = -/+0.5 (unit eye distance) in the eye plane z = 0, the nose tip 0.6 in front.
    """
    rng = np.random.default_rng(1)
    points = np.zeros((68, 3))
    points[:, :2] = rng.uniform(-0.8, 0.8, (68, 2))
    points[36:42] = [-0.5, 0.0, 0.0]
    points[42:48] = [0.5, 0.0, 0.0]
    points[30] = [0.0, 0.6, 0.6]
    points[48], points[54] = [-0.35, 1.1, 0.2], [0.35, 1.1, 0.2]
    yaw, roll = np.radians(yaw_degrees), np.radians(roll_degrees)
    turned = points @ np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]).T
    rolled = turned[:, :2] @ np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]]).T
    return rolled * 100 + 300


@pytest.mark.parametrize("yaw", [0.0, 10.0, 25.0, -35.0])
@pytest.mark.parametrize("roll", [0.0, 30.0])
def test_pose_asymmetry_matches_its_closed_form(yaw: float, roll: float) -> None:
    # nose-tip offset 0.6 sin(yaw) over half the projected eye distance 0.5 cos(yaw) = 1.2 tan(yaw)
    expected = 1.2 * abs(np.tan(np.radians(yaw)))
    assert pose_asymmetry(_turned_face(yaw, roll)) == pytest.approx(expected, abs=1e-9)


def test_the_most_serious_flag_wins_and_the_reason_lists_all() -> None:
    limits = QCThresholds(max_upsample=2.0, max_pose_asymmetry=0.6)
    assert assess(1, 1.0, 0.1, limits).status == "ok"
    assert assess(2, 1.0, 0.1, limits).status == "multiple_faces"
    low = assess(2, 3.0, 0.1, limits)
    assert low.status == "low_resolution" and "2 faces" in low.reason and "3.00x" in low.reason
    pose = assess(3, 3.0, 0.9, limits)
    assert pose.status == "extreme_pose" and "magnified" in pose.reason and not pose.fatal


def test_thresholds_reject_fatal_or_unknown_usable_statuses() -> None:
    with pytest.raises(ValueError, match="no_face"):
        QCThresholds(usable=("ok", "no_face"))
    with pytest.raises(ValueError, match="blurry"):
        QCThresholds(usable=("blurry",))
    assert QCThresholds(usable=("ok", "low_resolution")).usable == ("ok", "low_resolution")
