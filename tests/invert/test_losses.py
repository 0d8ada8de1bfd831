"""Loss terms: known values, per-image independence, mask weighting, discriminator features, LPIPS files."""

import pickle

import pytest
import torch
from pytorch_msssim import ms_ssim

from stylesurv.core.errors import InputError
from stylesurv.invert.losses import (
    DiscriminatorFeatures,
    LossWeights,
    LpipsVgg16,
    ReconstructionLoss,
    multiscale_pixel_loss,
    structural_loss,
)
from tests.invert.tiny import tiny_discriminator


def _images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_multiscale_mse_of_constant_offset_is_offset_squared() -> None:
    # Average pooling keeps a constant offset d, so every scale contributes d**2.
    target = _images(2)
    synth = target + torch.tensor([0.1, -0.3]).view(2, 1, 1, 1)
    assert multiscale_pixel_loss(synth, target, 3, "mse").tolist() == pytest.approx([0.01, 0.09], rel=1e-4)
    assert multiscale_pixel_loss(synth, target, 3, "l1").tolist() == pytest.approx([0.1, 0.3], rel=1e-4)


def test_structural_loss_uses_ms_ssim_for_large_images() -> None:
    a, b = _images(2, 176, seed=1), _images(2, 176, seed=2)
    expected = 1 - ms_ssim((a + 1) / 2, (b + 1) / 2, data_range=1.0, size_average=False)
    assert torch.allclose(structural_loss(a, b), expected)
    assert structural_loss(a, a).abs().max() < 1e-5


def test_losses_are_per_image_and_zero_at_target() -> None:
    D = tiny_discriminator()
    loss = ReconstructionLoss(LossWeights(mse=1, l1=0.5, ssim=1, disc=1), discriminator=D)
    target, synth = _images(3, seed=3), _images(3, seed=4)
    loss.set_target(target)
    batched = loss(synth)
    assert loss(target).abs().max() < 1e-5
    for i in range(3):  # n = 1 also shows the minibatch-std epilogue of D is never run
        loss.set_target(target[i : i + 1])
        assert loss(synth[i : i + 1]).item() == pytest.approx(batched[i].item(), rel=1e-5)


def test_mask_scales_differences_outside_the_face() -> None:
    target = _images(1, seed=5)
    face = torch.zeros(1, 1, 16, 16)
    face[..., 4:12, 4:12] = 1
    outside = target + 0.2 * (1 - face)  # differs only off the face
    plain = ReconstructionLoss(LossWeights(mse=1, ssim=0, pixel_scales=1))
    masked = ReconstructionLoss(LossWeights(mse=1, ssim=0, pixel_scales=1, background_weight=0.1))
    plain.set_target(target)
    masked.set_target(target, face)
    # blending scales the difference by 0.1, the squared error by 0.01
    assert masked(outside).item() == pytest.approx(0.01 * plain(outside).item(), rel=1e-4)
    inside = target + 0.2 * face
    assert masked(inside).item() == pytest.approx(plain(inside).item(), rel=1e-5)


def test_discriminator_features_are_the_block_outputs() -> None:
    D = tiny_discriminator()
    feats = DiscriminatorFeatures(D)(_images(3, seed=6))
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 8, 8), (32, 4, 4)]  # blocks b16 and b8


def _write_lpips_files(tmp_path, seed: int = 0):
    from stylesurv.invert.losses import _LPIPS_CHANNELS, _vgg16_features

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features = _vgg16_features()
        vgg = {f"features.{k}": v for k, v in features.state_dict().items()}
        vgg["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's file also has the classifier
        lins = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(_LPIPS_CHANNELS)}
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save(lins, tmp_path / "vgg.pth")
    return tmp_path / "vgg16.pth", tmp_path / "vgg.pth"


def test_lpips_loads_weight_files_and_behaves_as_a_distance(tmp_path) -> None:
    vgg_path, lin_path = _write_lpips_files(tmp_path)
    lpips = LpipsVgg16(vgg_path, lin_path)
    a, b = _images(2, 32, seed=7), _images(2, 32, seed=8)
    assert lpips(a, a).abs().max() < 1e-6
    d = lpips(a, b)
    assert (d > 0).all()
    assert torch.allclose(d, lpips(b, a))
    assert lpips(a[:1], b[:1]).item() == pytest.approx(d[0].item(), rel=1e-5)


def test_lpips_rejects_wrong_or_unsafe_files(tmp_path) -> None:
    vgg_path, lin_path = _write_lpips_files(tmp_path)
    torch.save({"lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="lin0"):
        LpipsVgg16(vgg_path, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="vgg16"):
        LpipsVgg16(lin_path, lin_path)
    (tmp_path / "code.pth").write_bytes(pickle.dumps(tmp_path))  # a pickle naming a class: refused
    with pytest.raises(InputError, match="safely"):
        LpipsVgg16(tmp_path / "code.pth", lin_path)
    with pytest.raises(InputError, match="not found"):
        LpipsVgg16(tmp_path / "missing.pth", lin_path)


def test_enabled_terms_need_their_networks() -> None:
    with pytest.raises(InputError, match="discriminator"):
        ReconstructionLoss(LossWeights(disc=1.0))
    with pytest.raises(InputError, match="LPIPS"):
        ReconstructionLoss(LossWeights(lpips=1.0))
