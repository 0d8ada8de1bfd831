"""Reconstruction losses for inversion, each returning one value per image so that images never interact.

Every loss maps ``synth`` and ``target`` images [N, 3, R, R] in [-1, 1] to a loss [N]; the projector sums
them over the batch, so with Adam (elementwise) each image's optimisation is independent of its batch mates.

A face mask focuses the loss: the synthesised image is blended into the target as
``target + m * (synth - target)`` with ``m = 1`` on the face and ``m = background_weight`` elsewhere, so
every loss (pixel, structural, perceptual) sees differences outside the face scaled down by that weight.

LPIPS-VGG16 (Zhang et al., CVPR 2018) needs two files the user already has on disk; nothing is downloaded:

- ``vgg16.pth``: a torchvision ``vgg16`` state dict (keys ``features.<i>.weight``/``.bias``; the
  ``classifier.*`` keys are ignored), e.g. the file torchvision names ``vgg16-397923af.pth``;
- ``vgg.pth``: the LPIPS v0.1 linear-layer weights of the ``lpips`` package (keys
  ``lin0.model.1.weight`` ... ``lin4.model.1.weight``, shapes [1, C, 1, 1] for C = 64, 128, 256, 512, 512).

Both are read with ``torch.load(weights_only=True)``, which cannot execute code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim, ssim
from torch import nn

from stylesurv.core.errors import InputError

# MS-SSIM with pytorch_msssim's 5 scales and 11-px window needs the short side > (11 - 1) * 2**4 = 160.
MS_SSIM_MIN_SIZE = 161


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (0 switches a term off) and how they are computed."""

    mse: float = 1.0  # multi-scale pixel mean squared error
    l1: float = 0.0  # multi-scale pixel mean absolute error
    ssim: float = 1.0  # 1 - MS-SSIM (R >= 161) or 1 - SSIM (smaller images)
    disc: float = 0.0  # discriminator-feature perceptual distance (needs a discriminator)
    lpips: float = 0.0  # LPIPS-VGG16 (needs LpipsVgg16 weights on disk)
    pixel_scales: int = 3  # pixel losses at R, R/2, ..., R/2**(scales-1), averaged
    background_weight: float = 0.1  # loss weight outside the face where a mask is given

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def blend_by_mask(synth: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor | None) -> torch.Tensor:
    """``target + m * (synth - target)``: differences where ``m`` < 1 count less in every loss."""
    if weight_map is None:
        return synth
    return target + weight_map * (synth - target)


def face_weight_map(face: torch.Tensor, background_weight: float) -> torch.Tensor:
    """Weight map [N, 1, R, R]: 1 on the face (0/1 masks ``face``), ``background_weight`` elsewhere."""
    return background_weight + (1.0 - background_weight) * face


def multiscale_pixel_loss(
    synth: torch.Tensor, target: torch.Tensor, scales: int, kind: str = "mse"
) -> torch.Tensor:
    """Mean squared (``kind="mse"``) or absolute (``"l1"``) error per image, averaged over resolutions."""
    total = synth.new_zeros(synth.shape[0])
    used = 0
    for _ in range(max(1, scales)):
        diff = synth - target
        total = total + (diff.square() if kind == "mse" else diff.abs()).mean(dim=(1, 2, 3))
        used += 1
        if synth.shape[-1] < 8:
            break
        synth, target = F.avg_pool2d(synth, 2), F.avg_pool2d(target, 2)
    return total / used


def ssim_window(size: int) -> int:
    """The largest odd Gaussian window no bigger than 11 (the SSIM paper's) that fits an image side."""
    win = min(11, size)
    return win if win % 2 == 1 else win - 1


def structural_loss(synth: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - MS-SSIM`` per image for R >= 161, else ``1 - SSIM`` (MS-SSIM's coarse scales need big images)."""
    x, y = (synth + 1) / 2, (target + 1) / 2
    side = min(x.shape[-2:])
    if side >= MS_SSIM_MIN_SIZE:
        return 1 - ms_ssim(x, y, data_range=1.0, size_average=False)
    return 1 - ssim(x, y, data_range=1.0, size_average=False, win_size=ssim_window(side))


def _normalise_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + eps)


def feature_distance(synth_feats: list[torch.Tensor], target_feats: list[torch.Tensor]) -> torch.Tensor:
    """Per image: sum over layers of the mean squared difference of channel-normalised features."""
    total = synth_feats[0].new_zeros(synth_feats[0].shape[0])
    for fs, ft in zip(synth_feats, target_feats, strict=True):
        total = total + (_normalise_channels(fs) - _normalise_channels(ft)).square().sum(1).mean(dim=(1, 2))
    return total


class _StopForward(Exception):
    """Raised by a hook once the last wanted block has run, so the discriminator's epilogue never runs."""


class DiscriminatorFeatures(nn.Module):
    """Intermediate feature maps of a StyleGAN2 discriminator's resolution blocks, as a perceptual space.

    Forward hooks on the blocks ``b<res>`` above 4x4 (NVIDIA's naming) record each block's feature output;
    the forward pass stops after the 8x8 block, so the epilogue (whose minibatch-std layer mixes images) is
    never reached and each image's features depend on that image alone.
    """

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator.eval().requires_grad_(False)
        blocks = {
            int(name[1:]): module
            for name, module in discriminator.named_children()
            if name[:1] == "b" and name[1:].isdigit() and int(name[1:]) > 4
        }
        if not blocks:
            raise InputError("the discriminator has no resolution blocks named b<res>; is it a StyleGAN2 D?")
        self._blocks = [blocks[res] for res in sorted(blocks, reverse=True)]
        self._c_dim = int(getattr(discriminator, "c_dim", 0))

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        last = self._blocks[-1]

        def record(module: nn.Module, _inputs: object, output: object) -> None:
            feats.append(output[0] if isinstance(output, tuple) else output)  # type: ignore[index]
            if module is last:
                raise _StopForward

        handles = [block.register_forward_hook(record) for block in self._blocks]
        try:
            self.discriminator(img, img.new_zeros(img.shape[0], self._c_dim))
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return feats


# torchvision vgg16 ``features`` indices: the ReLU outputs relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 end
# the slices that LPIPS compares.
_VGG16_CONVS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_LPIPS_SLICE_ENDS = (4, 9, 16, 23, 30)
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS' ScalingLayer constants (images in [-1, 1] mapped to ImageNet statistics).
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for spec in _VGG16_CONVS:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(spec), 3, padding=1), nn.ReLU(inplace=False)]
            channels = int(spec)
    return nn.Sequential(*layers)


def _load_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"{path}: {what} weights not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise InputError(f"{path}: cannot read {what} weights safely ({exc})") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state dict of tensors for {what}")
    return state


class LpipsVgg16(nn.Module):
    """LPIPS v0.1 with a VGG16 trunk, built from weights on disk (see the module docstring for the files)."""

    def __init__(self, vgg16_path: str | os.PathLike[str], lpips_path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.features = _vgg16_features()
        vgg_state = _load_state(Path(vgg16_path), "torchvision vgg16")
        wanted = {k.removeprefix("features."): v for k, v in vgg_state.items() if k.startswith("features.")}
        try:
            self.features.load_state_dict(wanted)
        except RuntimeError as exc:
            raise InputError(f"{vgg16_path}: not a torchvision vgg16 state dict ({exc})") from None
        lin_state = _load_state(Path(lpips_path), "LPIPS linear-layer")
        self.lins = nn.ParameterList()
        for i, channels in enumerate(_LPIPS_CHANNELS):
            key = f"lin{i}.model.1.weight"
            weight = lin_state.get(key)
            if weight is None or tuple(weight.shape) != (1, channels, 1, 1):
                raise InputError(f"{lpips_path}: missing or mis-shaped {key}; expected lpips' vgg.pth")
            self.lins.append(nn.Parameter(weight.float(), requires_grad=False))
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def trunk(self, img: torch.Tensor) -> list[torch.Tensor]:
        """The five VGG16 activations LPIPS compares, for images in [-1, 1]."""
        x = (img - self.shift) / self.scale
        feats, start = [], 0
        for end in _LPIPS_SLICE_ENDS:
            x = self.features[start:end](x)
            feats.append(x)
            start = end
        return feats

    def distance(self, synth_feats: list[torch.Tensor], target_feats: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS per image from trunk features: weighted channel sums, spatial mean, summed over layers."""
        total = synth_feats[0].new_zeros(synth_feats[0].shape[0])
        for lin, fs, ft in zip(self.lins, synth_feats, target_feats, strict=True):
            diff = (_normalise_channels(fs) - _normalise_channels(ft)).square()
            total = total + F.conv2d(diff, lin).mean(dim=(1, 2, 3))
        return total

    def forward(self, synth: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.distance(self.trunk(synth), self.trunk(target))


class ReconstructionLoss(nn.Module):
    """The weighted sum of the enabled loss terms, per image.

    Call :meth:`set_target` once per batch (it caches the target's perceptual features), then call the
    module on synthesised images; the result has shape [N].
    """

    def __init__(
        self,
        weights: LossWeights,
        discriminator: nn.Module | None = None,
        lpips: LpipsVgg16 | None = None,
    ) -> None:
        super().__init__()
        if weights.disc > 0 and discriminator is None:
            raise InputError("the discriminator loss needs a discriminator checkpoint (--discriminator)")
        if weights.lpips > 0 and lpips is None:
            raise InputError("the LPIPS loss needs VGG16 and LPIPS weights on disk (--vgg16, --lpips)")
        self.weights = weights
        self.disc_features = DiscriminatorFeatures(discriminator) if weights.disc > 0 else None
        self.lpips = lpips if weights.lpips > 0 else None
        self._target: torch.Tensor | None = None
        self._weight_map: torch.Tensor | None = None
        self._target_feats: dict[str, list[torch.Tensor]] = {}

    def set_target(self, target: torch.Tensor, face: torch.Tensor | None = None) -> None:
        """Fix the target images [N, 3, R, R] and optional 0/1 face masks [N, 1, R, R] for later calls."""
        self._target = target
        self._weight_map = None if face is None else face_weight_map(face, self.weights.background_weight)
        with torch.no_grad():
            self._target_feats = {name: fn(target) for name, fn in self._feature_fns().items()}

    def _feature_fns(self) -> dict[str, Callable[[torch.Tensor], list[torch.Tensor]]]:
        fns: dict[str, Callable[[torch.Tensor], list[torch.Tensor]]] = {}
        if self.disc_features is not None:
            fns["disc"] = self.disc_features
        if self.lpips is not None:
            fns["lpips"] = self.lpips.trunk
        return fns

    def forward(self, synth: torch.Tensor) -> torch.Tensor:
        if self._target is None:
            raise RuntimeError("call set_target() before computing the loss")
        w, target = self.weights, self._target
        x = blend_by_mask(synth, target, self._weight_map)
        loss = synth.new_zeros(synth.shape[0])
        if w.mse > 0:
            loss = loss + w.mse * multiscale_pixel_loss(x, target, w.pixel_scales, "mse")
        if w.l1 > 0:
            loss = loss + w.l1 * multiscale_pixel_loss(x, target, w.pixel_scales, "l1")
        if w.ssim > 0:
            loss = loss + w.ssim * structural_loss(x, target)
        if self.disc_features is not None:
            loss = loss + w.disc * feature_distance(self.disc_features(x), self._target_feats["disc"])
        if self.lpips is not None:
            loss = loss + w.lpips * self.lpips.distance(self.lpips.trunk(x), self._target_feats["lpips"])
        return loss
