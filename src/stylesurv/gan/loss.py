"""StyleGAN2 loss terms as small functions on tensors.

- Non-saturating logistic loss (Goodfellow et al. 2014): G minimises softplus(-D(G(z))), D minimises
  softplus(D(G(z))) + softplus(-D(x)).
- R1 (Mescheder et al. 2018): gamma / 2 * |grad_x D(x)|^2 on reals, evaluated lazily (Karras et al. 2020b).
- Path-length regularisation (Karras et al. 2020b): (|J_w^T y| - a)^2 with y ~ N(0, I / (H W)) and a the
  moving average of the lengths.
- Style mixing: from a random layer on, the minibatch uses the w of a second latent.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample non-saturating G loss softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_logits).flatten()


def discriminator_loss(real_logits: torch.Tensor | None, fake_logits: torch.Tensor | None) -> torch.Tensor:
    """Mean logistic D loss softplus(D(G(z))) + softplus(-D(x)); either side may be omitted."""
    terms = [F.softplus(fake_logits).mean()] if fake_logits is not None else []
    terms += [F.softplus(-real_logits).mean()] if real_logits is not None else []
    if not terms:
        raise ValueError("discriminator_loss needs real or fake logits")
    return torch.stack(terms).sum()


def r1_penalty(real_images: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample |grad_x D(x)|^2 [N]; ``real_images`` must require grad and have produced the logits.

    The graph is kept (create_graph) so that the penalty can be back-propagated into D's weights.
    """
    (grads,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grads.square().flatten(1).sum(1)


def path_lengths(images: torch.Tensor, ws: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per-sample |J_w^T y| [N] for images [N, C, H, W] produced from ws [N, L, w_dim] and y = ``noise``.

    The squared length is averaged over the L layers of W+ before the square root, as in StyleGAN2.
    """
    (grads,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grads.square().sum(2).mean(1).sqrt()


def path_length_noise(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """y ~ N(0, I / (H W)) of the images' shape, so that |J^T y| does not grow with resolution."""
    height, width = images.shape[2], images.shape[3]
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype) / math.sqrt(height * width)
    return noise.to(images.device)


class PathLengthTarget:
    """The moving average ``a`` of path lengths that the penalty pulls lengths toward."""

    def __init__(self, decay: float = 0.01) -> None:
        self.decay = decay
        self.mean = 0.0

    def penalty(self, lengths: torch.Tensor, batch_mean: float | None = None) -> torch.Tensor:
        """Update ``a`` with the lengths' mean (or ``batch_mean`` of all processes), return (len - a)^2."""
        mean = float(lengths.detach().mean()) if batch_mean is None else batch_mean
        self.mean = self.mean + (mean - self.mean) * self.decay
        return (lengths - self.mean).square()


def mix_styles(
    mapping: torch.nn.Module,
    ws: torch.Tensor,
    z_second: torch.Tensor,
    c: torch.Tensor,
    cutoff: int,
) -> torch.Tensor:
    """Replace the layers ``cutoff:`` of ws [N, L, w_dim] by the w of ``z_second`` (no change if cutoff=L)."""
    if cutoff >= ws.shape[1]:
        return ws
    second = mapping(z_second, c, update_emas=False)
    return torch.cat([ws[:, :cutoff], second[:, cutoff:]], dim=1)


def mixing_cutoff(num_ws: int, prob: float, generator: torch.Generator | None = None) -> int:
    """Layer from which a second latent takes over: uniform in [1, num_ws) with probability ``prob``."""
    u = float(torch.rand((), generator=generator))
    layer = int(torch.randint(1, max(num_ws, 2), (), generator=generator))
    return layer if u < prob and num_ws > 1 else num_ws
