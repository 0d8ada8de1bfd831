"""ADA pipeline: exact geometric and colour operations, differentiability, and the p controller."""

import math

import pytest
import torch

from stylesurv.gan.augment import (
    AdaController,
    apply_params,
    augment,
    color_matrix,
    sample_params,
    warp_bilinear_reflect,
)


def _identity(n: int) -> dict[str, torch.Tensor]:
    return sample_params(n, 0.0, "cpu", torch.Generator().manual_seed(0))


def test_p_zero_is_identity() -> None:
    images = torch.rand(3, 3, 8, 8) * 2 - 1
    assert torch.equal(augment(images, 0.0), images)
    assert torch.allclose(apply_params(images, _identity(3)), images, atol=1e-5)


def test_xflip_and_rot90_are_exact() -> None:
    images = torch.rand(2, 3, 8, 8)
    params = _identity(2)
    params["xflip"] = torch.ones(2)
    assert torch.allclose(apply_params(images, params), images.flip(-1), atol=1e-5)
    params = _identity(2)
    params["rot90"] = torch.full((2,), 2.0)  # 180 degrees
    assert torch.allclose(apply_params(images, params), images.flip(-1).flip(-2), atol=1e-5)


def test_integer_translation_moves_whole_pixels() -> None:
    images = torch.rand(1, 3, 16, 16)
    params = _identity(1)
    params["tx_int"] = torch.tensor([2 / 16])  # two pixels
    out = apply_params(images, params)
    # away from the reflected border the image is shifted by exactly two pixels (either direction)
    right, left = out[..., 2:], out[..., :-2]
    assert torch.allclose(right, images[..., :-2], atol=1e-5) or torch.allclose(
        left, images[..., 2:], atol=1e-5
    )


def test_colour_operations() -> None:
    images = torch.rand(1, 3, 4, 4) * 2 - 1
    params = _identity(1)
    params["brightness"] = torch.tensor([0.3])
    assert torch.allclose(apply_params(images, params), images + 0.3, atol=1e-5)
    params = _identity(1)
    params["saturation"] = torch.tensor([0.0])  # projects every pixel on the grey axis: its channel mean
    grey = apply_params(images, params)
    assert torch.allclose(grey, images.mean(1, keepdim=True).expand_as(images), atol=1e-5)
    params = _identity(1)
    params["hue"] = torch.tensor([1.234])  # hue rotation is a rotation: grey pixels stay, norms stay
    assert torch.allclose(apply_params(grey, params), grey, atol=1e-5)
    rotated = apply_params(images, params)
    assert torch.allclose(rotated.norm(dim=1), images.norm(dim=1), atol=1e-5)
    matrix = color_matrix(params)[0, :3, :3]
    assert torch.allclose(matrix @ matrix.T, torch.eye(3), atol=1e-6)


def test_cutout_zeroes_a_quarter_of_the_image() -> None:
    images = torch.ones(1, 3, 16, 16)
    params = _identity(1)
    params["cutout"] = torch.ones(1)
    params["cutout_cx"], params["cutout_cy"] = torch.tensor([0.5]), torch.tensor([0.5])
    out = apply_params(images, params)
    assert (out == 0).float().mean().item() == pytest.approx(0.25)


def test_each_operation_fires_with_probability_p() -> None:
    params = sample_params(4000, 0.3, "cpu", torch.Generator().manual_seed(1))
    assert (params["xflip"] != 0).float().mean().item() == pytest.approx(0.3 * 0.5, abs=0.03)
    assert (params["brightness"] != 0).float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert (params["cutout"] != 0).float().mean().item() == pytest.approx(0.3, abs=0.03)
    either_rotation = ((params["rot_pre"] != 0) | (params["rot_post"] != 0)).float().mean().item()
    assert either_rotation == pytest.approx(0.3, abs=0.03)


def test_pipeline_is_differentiable() -> None:
    images = torch.rand(4, 3, 8, 8).requires_grad_(True)
    out = augment(images, 1.0, torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(out.square().sum(), images)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def _random_warps(n: int, size: int, seed: int) -> torch.Tensor:
    """Pixel-space src_from_dst maps with rotations, scalings and shifts that reach far outside the image."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, generator=g) * 6.3
    scale = torch.exp2(torch.randn(n, generator=g))
    m = torch.zeros(n, 3, 3, dtype=torch.float64)
    m[:, 0, 0], m[:, 0, 1] = scale * torch.cos(theta), -scale * torch.sin(theta)
    m[:, 1, 0], m[:, 1, 1] = scale * torch.sin(theta), scale * torch.cos(theta)
    m[:, :2, 2] = (torch.rand(n, 2, generator=g) - 0.5) * 3 * size
    m[:, 2, 2] = 1
    return m


def test_warp_matches_grid_sample_with_reflection_padding() -> None:
    """Reference: torch's grid_sample, bilinear, reflection padding, align_corners=True (pixel centres)."""
    n, h, w = 6, 9, 12
    images = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    src_from_dst = _random_warps(n, w, seed=2)
    ours = warp_bilinear_reflect(images, src_from_dst)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
    src = torch.einsum("nij,pj->npi", src_from_dst[:, :2], pix)
    grid = torch.stack([src[..., 0] / (w - 1) * 2 - 1, src[..., 1] / (h - 1) * 2 - 1], -1).reshape(n, h, w, 2)
    ref = torch.nn.functional.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=True
    )
    assert torch.allclose(ours, ref, atol=1e-10)


def test_warp_identity_and_second_derivative() -> None:
    """The identity warp is exact; R1 needs the warp's second derivative (grid_sample lacks it on CUDA)."""
    images = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    assert torch.equal(
        warp_bilinear_reflect(images, torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)), images
    )
    warps = _random_warps(2, 7, seed=3)
    weights = torch.rand(2, 3, 5, 7, dtype=torch.float64)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return (warp_bilinear_reflect(x, warps) * weights).sin()

    x = images.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(energy, (x,))


def test_ada_p_rises_for_an_over_confident_discriminator() -> None:
    ada = AdaController(p=0.0, target=0.6, ada_kimg=500, interval=4)
    for _ in range(10):
        ada.accumulate(torch.full((32, 1), 5.0))  # D(real) > 0 always: r_t = 1 > 0.6
        ada.adjust(ada.totals(), images_seen=32 * 4)
    assert ada.last_rt == 1.0
    assert ada.p == pytest.approx(10 * 128 / 500_000)  # ADA's speed: 0 -> 1 in 500 kimg
    for _ in range(3):
        ada.accumulate(torch.full((32, 1), -5.0))  # r_t = -1 < 0.6: p falls, never below 0
        ada.adjust(ada.totals(), images_seen=32 * 4)
    assert ada.p == pytest.approx(7 * 128 / 500_000)
    ada.p = 0.999
    ada.accumulate(torch.ones(4, 1))
    ada.adjust(ada.totals(), images_seen=10_000)
    assert ada.p == 1.0
    assert math.isfinite(ada.last_rt)
