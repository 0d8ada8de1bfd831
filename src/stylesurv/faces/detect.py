"""Face detection, 68-point landmarks and 128-d identity descriptors with dlib.

The models ship in the ``face_recognition_models`` package.  Its ``__init__`` imports ``pkg_resources``, so
the model files are found through the package's import spec without importing it.  Each model is loaded
once per process.

Landmarks are continuous pixel coordinates with pixel centres at integer + 0.5 (the convention of
`stylesurv.faces.geometry`); dlib reports integer pixel indices, which are shifted by half a pixel.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylesurv.core.errors import InputError

MODEL_PACKAGE = "face_recognition_models"
SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"


@dataclass(frozen=True)
class Face:
    """One detected face: its box (left, top, right, bottom) in photo pixels, detector score, 68 landmarks."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # [68, 2] (x, y), pixel centres at integer + 0.5

    @property
    def area(self) -> float:
        left, top, right, bottom = self.box
        return (right - left) * (bottom - top)


def model_path(name: str) -> Path:
    """Path of a dlib model file from the ``face_recognition_models`` package, without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"the Python package {MODEL_PACKAGE!r} (dlib's face models) is not installed; "
            "install it with `pip install face-recognition-models`"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    raise InputError(
        f"{MODEL_PACKAGE} is installed but lacks models/{name}; reinstall face-recognition-models"
    )


def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise InputError("dlib is not installed; install it with `pip install dlib-bin`") from None
    return dlib


@functools.cache
def _frontal_detector() -> Any:
    return _dlib().get_frontal_face_detector()


@functools.cache
def _cnn_detector() -> Any:
    return _dlib().cnn_face_detection_model_v1(str(model_path(CNN_DETECTOR)))


@functools.cache
def _shape_predictor() -> Any:
    return _dlib().shape_predictor(str(model_path(SHAPE_PREDICTOR_68)))


@functools.cache
def _face_encoder() -> Any:
    return _dlib().face_recognition_model_v1(str(model_path(FACE_RECOGNITION)))


def load_models(cnn: bool = False) -> None:
    """Load the detector and the landmark model now (e.g. in a worker process's initializer)."""
    _frontal_detector()
    _shape_predictor()
    if cnn:
        _cnn_detector()


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def detect_faces(image: np.ndarray, upsample: int = 1, cnn: bool = False, max_side: int = 640) -> list[Face]:
    """All faces in an RGB ``uint8`` image with their 68 landmarks, the main face first (`main_face_first`).

    ``upsample``: times dlib doubles the image before detecting (1 finds faces down to about 40 px).
    ``cnn``: use dlib's CNN (MMOD) detector, slower but better on hard photos.  ``max_side``: the photo is
    shrunk (antialiased) so that its longer side is at most this for detection only, which keeps large
    photos fast (a face smaller than 40 px at 640 px is too small for a sharp alignment anyway); landmarks
    are always predicted on the full-resolution photo.
    """
    image = _as_rgb_uint8(image)
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
    dlib = _dlib()
    if cnn:
        found = [(d.rect, float(d.confidence)) for d in _cnn_detector()(small, upsample)]
    else:
        rects, scores, _ = _frontal_detector().run(small, upsample, 0.0)
        found = list(zip(rects, (float(s) for s in scores), strict=True))
    predictor = _shape_predictor()
    faces = []
    for rect, score in found:
        # box edges in continuous coordinates of the full-resolution photo
        scale_x, scale_y = small.shape[1] / width, small.shape[0] / height
        left, top = rect.left() / scale_x, rect.top() / scale_y
        box = (left, top, (rect.right() + 1) / scale_x, (rect.bottom() + 1) / scale_y)
        full = dlib.rectangle(*(round(v) for v in (box[0], box[1], box[2] - 1, box[3] - 1)))
        shape = predictor(image, full)
        landmarks = np.array([(p.x + 0.5, p.y + 0.5) for p in shape.parts()], dtype=np.float64)
        faces.append(Face(box=box, score=score, landmarks=landmarks))
    return main_face_first(faces)


def main_face_first(faces: list[Face], similar: float = 0.75) -> list[Face]:
    """Faces ordered largest first, except that among faces at least ``similar`` times the largest's area
    the one with the highest detector score comes first (a false detection can be about as large as the
    real face, as on the astronaut photo's space suit, but it scores lower)."""
    by_area = sorted(faces, key=lambda face: face.area, reverse=True)
    if len(by_area) < 2:
        return by_area
    contenders = [face for face in by_area if face.area >= similar * by_area[0].area]
    main = max(contenders, key=lambda face: face.score)
    return [main, *(face for face in by_area if face is not main)]


def face_descriptor(image: np.ndarray, landmarks: np.ndarray, jitters: int = 0) -> np.ndarray:
    """dlib's 128-d face descriptor (ResNet, LFW-trained) of the face with the given 68 landmarks.

    Two photos of one person are about 0.6 or less apart in Euclidean distance (dlib's documented
    threshold); used to measure how well an inversion keeps identity.
    """
    image = _as_rgb_uint8(image)
    dlib = _dlib()
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks of shape (68, 2), got {lm.shape}")
    pixels = np.floor(lm).astype(int)
    points = dlib.points([dlib.point(int(x), int(y)) for x, y in pixels])
    (left, top), (right, bottom) = pixels.min(axis=0), pixels.max(axis=0)
    shape = dlib.full_object_detection(dlib.rectangle(int(left), int(top), int(right), int(bottom)), points)
    return np.array(_face_encoder().compute_face_descriptor(image, shape, jitters), dtype=np.float64)
