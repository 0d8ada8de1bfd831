"""dlib detection, landmarks and identity descriptors on a real portrait."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from stylesurv.core.errors import InputError
from stylesurv.faces import detect
from stylesurv.faces.align import align_face
from stylesurv.faces.detect import Face, detect_faces, face_descriptor, main_face_first, model_path
from tests.faces.photos import jpeg_roundtrip, rescale, rotate


def test_model_files_are_found_without_importing_the_package() -> None:
    import sys

    path = model_path(detect.SHAPE_PREDICTOR_68)
    assert path.is_file() and path.parent.name == "models"
    assert "face_recognition_models" not in sys.modules  # its __init__ imports pkg_resources


def test_missing_model_package_is_a_clear_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_recognition_models" else real(name, *a),
    )
    with pytest.raises(InputError, match="face-recognition-models"):
        model_path(detect.SHAPE_PREDICTOR_68)


def test_astronaut_has_a_false_second_face_and_the_largest_comes_first(astronaut: np.ndarray) -> None:
    faces = detect_faces(astronaut, upsample=1)
    assert len(faces) == 2  # dlib's HOG detector also fires on the space suit at upsample 1
    assert faces[0].area > faces[1].area
    left, top, right, bottom = faces[0].box
    # the real face: box around (220, 125) in the 512 px photo, and all 68 points inside a slightly larger box
    assert left < 220 < right and top < 125 < bottom
    pad = 0.3 * (right - left)
    assert np.all(
        (faces[0].landmarks >= [left - pad, top - pad]) & (faces[0].landmarks <= [right + pad, bottom + pad])
    )
    assert detect_faces(astronaut, upsample=0)[0].area == pytest.approx(faces[0].area, rel=0.3)


def test_no_face_in_a_flat_image() -> None:
    assert detect_faces(np.full((200, 300, 3), 128, dtype=np.uint8)) == []


def test_detection_on_a_shrunk_copy_keeps_full_resolution_landmarks(astronaut: np.ndarray) -> None:
    big = rescale(astronaut, 2.0)
    full = detect_faces(big, max_side=1024)[0]
    shrunk = detect_faces(big, max_side=512)[0]
    assert np.abs(full.landmarks - shrunk.landmarks).mean() < 3.0  # pixels of the 1024 px photo


def test_rejects_non_rgb_input() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        detect_faces(np.zeros((10, 10), dtype=np.uint8))


def test_face_descriptor_keeps_identity_through_alignment_and_jpeg(astronaut: np.ndarray) -> None:
    landmarks = detect_faces(astronaut)[0].landmarks
    reference = face_descriptor(astronaut, landmarks)
    assert reference.shape == (128,) and np.all(np.isfinite(reference))
    aligned = align_face(astronaut, landmarks, 256)
    compressed = jpeg_roundtrip(astronaut, 30)
    # dlib documents 0.6 as the same-person threshold on Euclidean distance between descriptors
    assert np.linalg.norm(face_descriptor(aligned.image, aligned.landmarks) - reference) < 0.6
    assert np.linalg.norm(face_descriptor(compressed, landmarks) - reference) < 0.6
    # a scrambled face is not the same person
    rng = np.random.default_rng(0)
    scrambled = rng.permutation(astronaut.reshape(-1, 3)).reshape(astronaut.shape)
    assert np.linalg.norm(face_descriptor(scrambled, landmarks) - reference) > 0.6


def _face(side: float, score: float) -> Face:
    return Face(box=(0.0, 0.0, side, side), score=score, landmarks=np.zeros((68, 2)))


def test_main_face_is_the_largest_unless_a_similar_one_scores_higher() -> None:
    big, near, small = _face(100, 0.2), _face(95, 0.9), _face(50, 2.0)
    assert main_face_first([small, big]) == [big, small]
    assert main_face_first([big, near, small]) == [near, big, small]  # 95^2 >= 0.75 * 100^2: score decides
    assert main_face_first([_face(100, 0.2), _face(80, 0.9)])[0].box[2] == 100  # 80^2 < 0.75 * 100^2
    assert main_face_first([]) == []


def test_a_false_detection_as_large_as_the_face_is_not_chosen(astronaut: np.ndarray) -> None:
    # rotated by -20 degrees and detected at 640 px, the space suit's box is as large as the face's
    photo = rotate(astronaut, -20)
    faces = detect_faces(photo)
    assert len(faces) == 2 and faces[0].area < 1.05 * faces[1].area and faces[0].score > faces[1].score
    eyes_y = faces[0].landmarks[36:48, 1].mean()
    assert eyes_y < photo.shape[0] / 2  # the face is in the upper half of the photo, the suit below


def test_cnn_detector_finds_the_same_face(astronaut: np.ndarray) -> None:
    photo = np.ascontiguousarray(astronaut[:300, 80:380])  # small, so dlib's CNN stays quick on a CPU
    cnn = detect_faces(photo, upsample=0, cnn=True)
    hog = detect_faces(photo, upsample=1)
    assert len(cnn) == 1 and len(hog) == 1
    assert np.abs(cnn[0].landmarks - hog[0].landmarks).mean() < 1.0
