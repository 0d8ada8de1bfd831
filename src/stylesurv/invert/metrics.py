"""Per-image reconstruction metrics: MSE, PSNR, SSIM, the same inside the face mask, and identity similarity.

Images are compared on the [0, 1] scale (data range 1).  SSIM is scikit-image's ``structural_similarity``
with the settings of Wang et al. (2004): Gaussian window sigma 1.5, population covariance, K1 0.01,
K2 0.03; ``ssim`` is scikit-image's mean (borders cropped), ``ssim_face`` the mean of the SSIM map over
face pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

# dlib's face descriptor is trained on faces of about 150 px; identity scores of smaller images mean little.
IDENTITY_MIN_RESOLUTION = 150


def to_unit_hwc(images: torch.Tensor) -> np.ndarray:
    """[N, 3, R, R] tensors in [-1, 1] -> float64 numpy [N, R, R, 3] in [0, 1]."""
    return ((images.detach().cpu().double().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()


def psnr_from_mse(mse: np.ndarray) -> np.ndarray:
    """PSNR in dB for data range 1; infinite for identical images."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / np.asarray(mse, dtype=np.float64))


def _ssim_map(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    mean, full = structural_similarity(
        a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        full=True,
    )  # fmt: skip
    return float(mean), full


def reconstruction_metrics(
    target: torch.Tensor, recon: torch.Tensor, face: torch.Tensor | None = None
) -> dict[str, np.ndarray]:
    """Per-image ``mse``, ``psnr``, ``ssim`` and, with 0/1 face masks [N, 1, R, R], ``*_face`` variants.

    Face metrics of an image whose mask is empty are NaN.
    """
    a, b = to_unit_hwc(target), to_unit_hwc(recon)
    sq = (a - b) ** 2
    out: dict[str, list[float]] = {"mse": [], "ssim": []}
    masks = None if face is None else face.detach().cpu().numpy()[:, 0] > 0.5
    if masks is not None:
        out.update({"mse_face": [], "ssim_face": []})
    for i in range(len(a)):
        mean_ssim, full = _ssim_map(a[i], b[i])
        out["mse"].append(float(sq[i].mean()))
        out["ssim"].append(mean_ssim)
        if masks is not None:
            inside = masks[i]
            has_face = bool(inside.any())
            out["mse_face"].append(float(sq[i][inside].mean()) if has_face else float("nan"))
            out["ssim_face"].append(float(full[inside].mean()) if has_face else float("nan"))
    result = {name: np.asarray(values, dtype=np.float64) for name, values in out.items()}
    result["psnr"] = psnr_from_mse(result["mse"])
    if masks is not None:
        result["psnr_face"] = psnr_from_mse(result["mse_face"])
    return result


def identity_similarity(
    target: torch.Tensor, recon: torch.Tensor, landmarks: list[np.ndarray | None]
) -> np.ndarray:
    """Cosine similarity of dlib's 128-d face descriptors of each photo and its reconstruction.

    Both descriptors are taken at the photo's 68 aligned landmarks (the reconstruction is pixel-aligned
    with it); NaN where an image has no landmarks.  Meaningful for real photos of at least 150 px.
    """
    from stylesurv.faces.detect import face_descriptor

    a = (to_unit_hwc(target) * 255).round().astype(np.uint8)
    b = (to_unit_hwc(recon) * 255).round().astype(np.uint8)
    scores = np.full(len(a), np.nan)
    for i, marks in enumerate(landmarks):
        if marks is None:
            continue
        da, db = face_descriptor(a[i], marks), face_descriptor(b[i], marks)
        scores[i] = float(da @ db / (np.linalg.norm(da) * np.linalg.norm(db)))
    return scores
