"""Adaptive discriminator augmentation (ADA, Karras et al. 2020): a differentiable pipeline and its p.

Every image shown to D, real or generated, goes through the same random transformations, each applied
independently with probability p: x-flip, 90-degree rotation, integer translation, isotropic scaling,
arbitrary rotation, anisotropic scaling, fractional translation (one affine warp: bilinear, reflection
padding), brightness, contrast, hue rotation and saturation (one 4x4 colour matrix), and cutout.
The parameter distributions are those of the ADA paper's ``bgc`` pipeline plus cutout.  Because all
operations are differentiable, G learns only through the augmented view and the augmentations do not leak
into its samples while p stays below ~0.8.

``AdaController`` holds p and moves it from the sign of D's outputs on reals: r_t = E[sign(D(x))] above
the target (0.6) means D is over-confident, so p rises; p moves by (images seen) / (ada_kimg * 1000),
i.e. from 0 to 1 in ``ada_kimg`` thousand images.

The warp is our own bilinear sampler built from ``gather``: the R1 penalty differentiates D's gradient with
respect to the images, which needs the second derivative of the sampler.  ``grid_sample`` (and kornia's
``warp_affine``, which calls it) has none on CUDA ("derivative for aten::grid_sampler_2d_backward is not
implemented"); gather's backward is a scatter-add, differentiable again, on every device.
"""

from __future__ import annotations

import math

import torch

_LUMA = torch.tensor([1.0, 1.0, 1.0]) / math.sqrt(3.0)  # axis of hue rotation / saturation in RGB


def sample_params(
    n: int, p: float, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Random parameters of every operation for ``n`` images; an operation not applied gets its identity."""

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(device)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(device)

    def gate(values: torch.Tensor, identity: float, prob: float = p) -> torch.Tensor:
        return torch.where(rand(n) < prob, values, torch.full_like(values, identity))

    p_rot = 1 - math.sqrt(1 - min(p, 1.0))  # rotation is applied twice, so P(any rotation) = p
    return {
        "xflip": gate(torch.floor(rand(n) * 2), 0.0),
        "rot90": gate(torch.floor(rand(n) * 4), 0.0),
        "tx_int": gate((rand(n) * 2 - 1) * 0.125, 0.0),
        "ty_int": gate((rand(n) * 2 - 1) * 0.125, 0.0),
        "scale": gate(torch.exp2(randn(n) * 0.2), 1.0),
        "rot_pre": gate((rand(n) * 2 - 1) * math.pi, 0.0, p_rot),
        "aniso": gate(torch.exp2(randn(n) * 0.2), 1.0),
        "rot_post": gate((rand(n) * 2 - 1) * math.pi, 0.0, p_rot),
        "tx_frac": gate(randn(n) * 0.125, 0.0),
        "ty_frac": gate(randn(n) * 0.125, 0.0),
        "brightness": gate(randn(n) * 0.2, 0.0),
        "contrast": gate(torch.exp2(randn(n) * 0.5), 1.0),
        "hue": gate((rand(n) * 2 - 1) * math.pi, 0.0),
        "saturation": gate(torch.exp2(randn(n) * 1.0), 1.0),
        "cutout": gate(torch.ones(n, device=device), 0.0),
        "cutout_cx": rand(n),
        "cutout_cy": rand(n),
    }


def _affine(n: int, device: torch.device) -> torch.Tensor:
    return torch.eye(3, device=device).repeat(n, 1, 1)


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _affine(len(sx), sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    m = _affine(len(theta), theta.device)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _affine(len(tx), tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def geometric_matrix(params: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """[N, 3, 3] output-to-input map in coordinates centred on the image, in units of half its width."""
    flip = 1 - 2 * params["xflip"]
    ones = torch.ones_like(flip)
    tx_int = torch.round(params["tx_int"] * size) / size * 2  # whole pixels, in half-widths
    ty_int = torch.round(params["ty_int"] * size) / size * 2
    steps = [
        _scale(flip, ones),
        _rotate(-math.pi / 2 * params["rot90"]),
        _translate(tx_int, ty_int),
        _scale(params["scale"], params["scale"]),
        _rotate(params["rot_pre"]),
        _scale(params["aniso"], 1 / params["aniso"]),
        _rotate(params["rot_post"]),
        _translate(params["tx_frac"] * 2, params["ty_frac"] * 2),
    ]
    forward = steps[0]
    for step in steps[1:]:
        forward = step @ forward
    return torch.linalg.inv(forward)


def color_matrix(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """[N, 4, 4] matrix acting on homogeneous RGB in [-1, 1]: brightness, contrast, hue, saturation."""
    n, device = len(params["brightness"]), params["brightness"].device
    v = _LUMA.to(device)
    outer = torch.outer(v, v)
    eye4 = torch.eye(4, device=device).repeat(n, 1, 1)
    bright = eye4.clone()
    bright[:, :3, 3] = params["brightness"][:, None]
    contrast = eye4.clone()
    contrast[:, :3, :3] *= params["contrast"][:, None, None]
    hue = eye4.clone()
    hue[:, :3, :3] = _axis_rotation(v, params["hue"])
    sat = eye4.clone()
    sat[:, :3, :3] = outer + (torch.eye(3, device=device) - outer) * params["saturation"][:, None, None]
    return sat @ hue @ contrast @ bright


def _axis_rotation(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """[N, 3, 3] rotations by ``theta`` about the unit ``axis`` (Rodrigues' formula)."""
    k = torch.zeros(3, 3, device=axis.device)
    k[0, 1], k[0, 2], k[1, 0], k[1, 2], k[2, 0], k[2, 1] = (
        -axis[2],
        axis[1],
        axis[2],
        -axis[0],
        -axis[1],
        axis[0],
    )
    s, c = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
    return torch.eye(3, device=axis.device) + s * k + (1 - c) * (k @ k)


def _reflect(coords: torch.Tensor, high: int) -> torch.Tensor:
    """Fold coordinates into [0, high] by mirroring about 0 and ``high`` (pixel centres), repeatedly."""
    if high == 0:
        return torch.zeros_like(coords)
    folded = torch.remainder(coords, 2 * high)
    return torch.where(folded > high, 2 * high - folded, folded)


def warp_bilinear_reflect(images: torch.Tensor, src_from_dst: torch.Tensor) -> torch.Tensor:
    """Resample images [N, C, H, W]: output pixel (x, y) reads the input at ``src_from_dst`` @ (x, y, 1).

    Pixel coordinates are pixel-centre indices; outside the image the input is mirrored about its border
    pixels (``grid_sample``'s reflection padding with ``align_corners=True``).  Differentiable twice in the
    images; the coordinates carry no gradient.
    """
    n, channels, height, width = images.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=images.device, dtype=images.dtype),
        torch.arange(width, device=images.device, dtype=images.dtype),
        indexing="ij",
    )
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones_like(xs).reshape(-1)])  # [3, HW]
    src = (src_from_dst[:, :2].to(images.dtype) @ grid).detach()  # [N, 2, HW]
    sx, sy = _reflect(src[:, 0], width - 1), _reflect(src[:, 1], height - 1)
    x0, y0 = sx.floor().clamp(0, width - 1), sy.floor().clamp(0, height - 1)
    fx, fy = (sx - x0)[:, None], (sy - y0)[:, None]
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
    flat = images.reshape(n, channels, height * width)

    def tap(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat.gather(2, (y * width + x)[:, None].expand(n, channels, -1))

    top = tap(y0, x0) * (1 - fx) + tap(y0, x1) * fx
    bottom = tap(y1, x0) * (1 - fx) + tap(y1, x1) * fx
    return (top * (1 - fy) + bottom * fy).reshape(n, channels, height, width)


def apply_params(images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply sampled parameters to images [N, C, H, W] in [-1, 1] (differentiable in the images)."""
    n, channels, height, width = images.shape
    inverse = geometric_matrix(params, width)
    if not torch.allclose(inverse, torch.eye(3, device=images.device).expand_as(inverse)):
        # centred half-width units -> pixels: x_pix = (x + 1) * W / 2 - 0.5
        to_pix = torch.tensor(
            [[width / 2, 0, (width - 1) / 2], [0, height / 2, (height - 1) / 2], [0, 0, 1]],
            device=images.device,
        )
        images = warp_bilinear_reflect(images, to_pix @ inverse @ torch.linalg.inv(to_pix))
    if channels == 3:
        c = color_matrix(params)
        images = torch.einsum("nij,njhw->nihw", c[:, :3, :3], images) + c[:, :3, 3, None, None]
    if bool((params["cutout"] > 0).any()):
        ys = (torch.arange(height, device=images.device) + 0.5) / height
        xs = (torch.arange(width, device=images.device) + 0.5) / width
        inside_y = (ys[None, :] - params["cutout_cy"][:, None]).abs() < 0.25  # cutout size 0.5 of the side
        inside_x = (xs[None, :] - params["cutout_cx"][:, None]).abs() < 0.25
        hole = inside_y[:, :, None] & inside_x[:, None, :] & (params["cutout"] > 0)[:, None, None]
        images = images * (~hole)[:, None].to(images.dtype)
    return images


def augment(images: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment float images [N, C, H, W] in [-1, 1] with probability ``p`` per operation."""
    if p <= 0:
        return images
    return apply_params(images, sample_params(images.shape[0], p, images.device, generator))


class AdaController:
    """Holds the augmentation probability p and moves it toward a target E[sign(D(real))]."""

    def __init__(
        self, p: float = 0.0, target: float = 0.6, ada_kimg: float = 500.0, interval: int = 4
    ) -> None:
        self.p = p  # current augmentation probability
        self.target = target  # desired E[sign(D(real))]
        self.ada_kimg = ada_kimg  # thousands of images for p to go from 0 to 1
        self.interval = interval  # minibatches between adjustments
        self._sign_sum = 0.0
        self._count = 0
        self.last_rt = float("nan")

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Record D's outputs on (this process's) reals."""
        self._sign_sum += float(torch.sign(real_logits.detach()).sum())
        self._count += real_logits.numel()

    def totals(self) -> torch.Tensor:
        """[2] float64 tensor (sum of signs, count), to be summed across processes before ``adjust``."""
        return torch.tensor([self._sign_sum, float(self._count)], dtype=torch.float64)

    def adjust(self, totals: torch.Tensor, images_seen: int) -> None:
        """Move p by sign(r_t - target) * images_seen / (ada_kimg * 1000); clamp to [0, 1]."""
        sign_sum, count = float(totals[0]), float(totals[1])
        self._sign_sum, self._count = 0.0, 0
        if count == 0:
            return
        self.last_rt = sign_sum / count
        step = math.copysign(1.0, self.last_rt - self.target) * images_seen / (self.ada_kimg * 1000)
        if self.last_rt == self.target:
            step = 0.0
        self.p = min(max(self.p + step, 0.0), 1.0)
