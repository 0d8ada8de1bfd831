"""Region masks from landmarks: the face covers the inner features, clothing the bottom, mirror symmetry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from stylesurv.core.geometry import mirror_landmarks
from stylesurv.faces.align import align_face
from stylesurv.faces.detect import detect_faces
from stylesurv.faces.mask import BACKGROUND, CLOTHING, FACE, OTHER, region_mask

R = 128


@pytest.fixture(scope="module")
def aligned(astronaut: np.ndarray):
    return align_face(astronaut, detect_faces(astronaut)[0].landmarks, R)


def test_labels_follow_the_face(aligned) -> None:
    labels = region_mask(aligned.landmarks, R)
    assert labels.shape == (R, R) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {BACKGROUND, FACE, CLOTHING, OTHER}
    inner = np.floor(aligned.landmarks[17:68]).astype(int)  # brows, nose, eyes, mouth
    assert np.all(labels[inner[:, 1], inner[:, 0]] == FACE)
    assert labels[2, 2] == BACKGROUND and labels[2, R - 3] == BACKGROUND  # top corners
    assert labels[R - 2, 1] == CLOTHING and labels[R - 2, R - 2] == CLOTHING  # bottom corners: shoulders
    forehead = aligned.landmarks[17:27].mean(axis=0) - [0, 0.1 * R]
    assert labels[int(forehead[1]), int(forehead[0])] == FACE
    above_head = aligned.landmarks[17:27].mean(axis=0) - [0, 0.45 * R]
    assert labels[max(int(above_head[1]), 0), int(above_head[0])] in (OTHER, BACKGROUND)
    # the face's skin: the labelled face region is mostly skin-coloured (red above green) in the astronaut
    skin = aligned.image[labels == FACE].astype(float)
    assert np.mean(skin[:, 0] > skin[:, 1]) > 0.9


def test_mirrored_landmarks_give_the_mirrored_mask(aligned) -> None:
    labels = region_mask(aligned.landmarks, R)
    mirrored = region_mask(mirror_landmarks(aligned.landmarks, R), R)
    differ = mirrored[:, ::-1] != labels
    assert differ.mean() < 0.05
    # polygon filling rounds boundary pixels to one side, so only pixels next to a region boundary may differ
    edge = np.zeros_like(differ)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:-1] |= labels[1:] != labels[:-1]
    near_edge = binary_dilation(edge, iterations=1)
    assert not np.any(differ & ~near_edge)


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="68"):
        region_mask(np.zeros((5, 2)), R)
