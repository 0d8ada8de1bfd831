"""Loss terms against closed forms: logistic losses, R1 on a quadratic D, path length on a linear G."""

import math

import pytest
import torch

from stylesurv.gan.loss import (
    PathLengthTarget,
    discriminator_loss,
    generator_loss,
    mix_styles,
    mixing_cutoff,
    path_length_noise,
    path_lengths,
    r1_penalty,
)


def test_logistic_losses_match_log_sigmoid() -> None:
    logits = torch.tensor([[-3.0], [0.0], [2.5]])
    # softplus(-x) = -log(sigmoid(x)); at 0 it is log 2.
    assert torch.allclose(generator_loss(logits), -torch.log(torch.sigmoid(logits)).flatten())
    assert generator_loss(torch.zeros(1, 1)).item() == pytest.approx(math.log(2))
    real, fake = torch.tensor([[1.0], [2.0]]), torch.tensor([[-1.0], [0.5]])
    expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    assert discriminator_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)
    assert discriminator_loss(torch.zeros(3, 1), torch.zeros(3, 1)).item() == pytest.approx(2 * math.log(2))
    assert discriminator_loss(None, fake).item() == pytest.approx(
        -torch.log(1 - torch.sigmoid(fake)).mean().item()
    )


def test_r1_matches_closed_form_of_quadratic_discriminator() -> None:
    # D(x) = sum_i a_i x_i^2  =>  grad_x D = 2 a x,  |grad|^2 = sum 4 a^2 x^2,  d|grad|^2/da = 8 a x^2.
    a = torch.randn(3, 4, 4).requires_grad_(True)
    x = torch.randn(5, 3, 4, 4).requires_grad_(True)
    logits = (a * x.square()).flatten(1).sum(1, keepdim=True)
    penalty = r1_penalty(x, logits)
    expected = (4 * a.detach().square() * x.detach().square()).flatten(1).sum(1)
    assert torch.allclose(penalty, expected, rtol=1e-5)
    penalty.sum().backward()
    assert torch.allclose(a.grad, (8 * a.detach() * x.detach().square()).sum(0), rtol=1e-5)


def test_path_length_matches_linear_generator() -> None:
    # img = sum_l A_l w_l  =>  J_l^T y = A_l^T y and length = sqrt(mean_l |A_l^T y|^2).
    n, layers, w_dim, side = 3, 2, 5, 4
    A = torch.randn(layers, 3 * side * side, w_dim)
    ws = torch.randn(n, layers, w_dim).requires_grad_(True)
    images = torch.einsum("lpw,nlw->np", A, ws).view(n, 3, side, side)
    noise = path_length_noise(images, torch.Generator().manual_seed(0))
    lengths = path_lengths(images, ws, noise)
    y = noise.flatten(1)
    expected = torch.stack([(y @ A[l]).square().sum(1) for l in range(layers)], 1).mean(1).sqrt()
    assert torch.allclose(lengths, expected, rtol=1e-5)


def test_path_length_noise_has_variance_one_over_pixels() -> None:
    images = torch.zeros(64, 3, 16, 16)
    noise = path_length_noise(images, torch.Generator().manual_seed(0))
    assert noise.var().item() == pytest.approx(1 / 256, rel=0.05)


def test_path_length_target_is_a_moving_average() -> None:
    target = PathLengthTarget(decay=0.01)
    lengths = torch.full((4,), 2.0)
    penalty = target.penalty(lengths)
    assert target.mean == pytest.approx(0.02)  # 0 + (2 - 0) * 0.01
    assert torch.allclose(penalty, torch.full((4,), (2 - 0.02) ** 2))
    target.penalty(lengths, batch_mean=4.0)
    assert target.mean == pytest.approx(0.02 + (4 - 0.02) * 0.01)


class _Identity(torch.nn.Module):
    def forward(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        return z[:, None, :].repeat(1, 4, 1)


def test_style_mixing_switches_latents_at_cutoff() -> None:
    mapping = _Identity()
    z1, z2 = torch.zeros(2, 3), torch.ones(2, 3)
    mixed = mix_styles(mapping, mapping(z1, None), z2, None, cutoff=1)
    assert torch.equal(mixed[:, :1], torch.zeros(2, 1, 3)) and torch.equal(mixed[:, 1:], torch.ones(2, 3, 3))
    assert torch.equal(mix_styles(mapping, mapping(z1, None), z2, None, cutoff=4), torch.zeros(2, 4, 3))


def test_mixing_cutoff_probability() -> None:
    gen = torch.Generator().manual_seed(0)
    cutoffs = [mixing_cutoff(6, 0.9, gen) for _ in range(2000)]
    mixed = [c for c in cutoffs if c < 6]
    assert len(mixed) / 2000 == pytest.approx(0.9, abs=0.03)
    assert set(mixed) == {1, 2, 3, 4, 5}
    assert all(mixing_cutoff(6, 0.0, gen) == 6 for _ in range(50))
