"""Aligning the synthetic world's unaligned photos with their true landmarks reproduces its aligned view."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stylesurv.app.cli import main
from stylesurv.cohort.render import render_aligned
from stylesurv.cohort.synthetic import make_world, to_uint8, write_world
from stylesurv.core.aligned import read_qc
from stylesurv.faces.folder import read_landmarks_csv
from stylesurv.faces.mask import CLOTHING, FACE

R = 64
N = 8


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def world_and_aligned(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synthetic")
    world = make_world("cohort", N, seed=3)
    write_world(world, root / "cohort", resolution=R, unaligned=True, fmt="png", workers=1)
    out = root / "aligned"
    argv = ["-q", "align", str(root / "cohort"), "--out", str(out), "--resolution", str(R)]
    assert main([*argv, "--landmarks", str(root / "cohort" / "landmarks.csv"), "--workers", "1"]) == 0
    return world, root / "cohort", out


def test_unaligned_photos_align_to_the_aligned_rendering(world_and_aligned) -> None:
    world, _, out = world_and_aligned
    rows = read_qc(out)
    assert [row["status"] for row in rows] == ["ok"] * N
    landmarks = read_landmarks_csv(out / "landmarks.csv")
    psnrs = []
    for index, row in enumerate(rows):
        reference, reference_landmarks = render_aligned(world.subject(index), R)
        aligned = np.asarray(Image.open(out / f"{row['patient_id']}.png"))
        psnrs.append(_psnr(aligned, to_uint8(reference)))
        # landmarks.csv of the world keeps 3 decimals in photo pixels
        np.testing.assert_allclose(landmarks[row["patient_id"]], reference_landmarks, atol=0.01)
    # the bound is 30 dB for each subject; the photos carry sensor noise (mean measured 35.9 dB)
    assert min(psnrs) >= 30.0


def test_estimated_masks_agree_with_the_true_masks(world_and_aligned) -> None:
    _, cohort, out = world_and_aligned
    face, clothing = [], []
    for row in read_qc(out):
        ours = np.asarray(Image.open(out / "masks" / f"{row['patient_id']}.png"))
        truth = np.asarray(Image.open(cohort / "masks" / f"{row['patient_id']}.png"))
        face.append(_iou(ours == FACE, truth == FACE))
        clothing.append(_iou(ours == CLOTHING, truth == CLOTHING))
    # measured on this world: face 0.84 and clothing 0.75 on average (see faces/mask.py)
    assert np.mean(face) > 0.75 and np.mean(clothing) > 0.6
