"""Reconstruction metrics against scikit-image's reference implementations."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from stylesurv.invert.metrics import reconstruction_metrics


def _pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    a = torch.rand(2, 3, 24, 24, generator=rng) * 2 - 1
    return a, (a + 0.1 * torch.randn(a.shape, generator=rng)).clamp(-1, 1)


def test_psnr_and_ssim_match_scikit_image() -> None:
    a, b = _pair(0)
    m = reconstruction_metrics(a, b)
    for i in range(2):
        x = ((a[i] + 1) / 2).permute(1, 2, 0).double().numpy()
        y = ((b[i] + 1) / 2).permute(1, 2, 0).double().numpy()
        assert m["psnr"][i] == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0))
        settings = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
        ref = structural_similarity(x, y, data_range=1.0, channel_axis=2, **settings)
        assert m["ssim"][i] == pytest.approx(ref)
        assert m["mse"][i] == pytest.approx(((x - y) ** 2).mean())


def test_face_metrics_see_only_the_face() -> None:
    a, _ = _pair(1)
    face = torch.zeros(2, 1, 24, 24)
    face[0, :, 6:18, 6:18] = 1  # the second image has an empty mask
    b = a.clone()
    b[:, :, :3] = -a[:, :, :3]  # change only rows 0-2, outside the face
    m = reconstruction_metrics(a, b, face)
    assert m["mse"][0] > 0 and m["mse_face"][0] == 0 and np.isinf(m["psnr_face"][0])
    assert np.isnan(m["mse_face"][1]) and np.isnan(m["ssim_face"][1])
    assert set(m) == {"mse", "psnr", "ssim", "mse_face", "psnr_face", "ssim_face"}


def test_identity_similarity_with_dlib_descriptors() -> None:
    from skimage import data

    from stylesurv.faces.detect import detect_faces
    from stylesurv.invert.metrics import identity_similarity

    photo = np.ascontiguousarray(data.astronaut()[:256, 96:352])  # scikit-image's portrait, face centred
    faces = detect_faces(photo)
    assert faces, "dlib should find the astronaut's face"
    marks = faces[0].landmarks
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1
    other = torch.from_numpy(np.ascontiguousarray(photo[:, ::-1])).permute(2, 0, 1)[None].float() / 127.5 - 1
    same = identity_similarity(image, image, [marks])
    assert same[0] == pytest.approx(1.0)
    mirrored = identity_similarity(image, other, [marks])  # landmarks no longer fit the face: lower
    assert mirrored[0] < same[0]
    assert np.isnan(identity_similarity(image, image, [None])[0])
