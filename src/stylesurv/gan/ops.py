"""StyleGAN2 low-level ops in pure PyTorch: FIR resampling, bias + activation, modulated convolution.

The semantics follow NVIDIA's stylegan2-ada-pytorch `torch_utils/ops` (same arguments, same order of
operations, same constants) so that weights trained there give the same images here, on CPU and GPU,
without compiled extensions. Every fast path has a plain reference path (`impl="ref"`, or
`with ops.default_impl("ref"):` for whole networks) and tests check that both agree.

Conventions: images and activations are `[N, C, H, W]`; a FIR filter is a 2-D `[fh, fw]` or separable
1-D `[fw]` float32 tensor prepared by `setup_filter`; `padding` is an int or `[x0, x1, y0, y1]` (negative
values crop).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]
IMPLS = ("fast", "ref")
_default_impl = "fast"


@contextlib.contextmanager
def default_impl(impl: str) -> Iterator[None]:
    """Run the ops with `impl` ("fast" or "ref") wherever a caller does not pass `impl` (e.g. networks)."""
    global _default_impl
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; use 'fast' or 'ref'")
    previous, _default_impl = _default_impl, impl
    try:
        yield
    finally:
        _default_impl = previous


def _resolve(impl: str | None) -> str:
    impl = _default_impl if impl is None else impl
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; use 'fast' or 'ref'")
    return impl


@dataclass(frozen=True)
class Activation:
    """An activation function with its default negative slope and its default output gain."""

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, alpha: x, 0.0, 1.0),
    "relu": Activation(lambda x, alpha: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """Add bias `b` along `dim`, apply `act`, multiply by `gain` (default: the activation's), clamp.

    Order and defaults are the reference's: lrelu has slope 0.2 and gain sqrt(2); `clamp=None` disables it.
    `impl="fast"` uses that (l)relu commutes with a positive gain to make two passes over `x` instead of
    four: `y = gain * x + gain * b` then the activation in place.
    """
    impl = _resolve(impl)
    spec = ACTIVATIONS[act]
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    bias_shape = [1] * x.ndim
    bias_shape[dim] = -1
    if impl == "fast" and gain > 0:
        if b is not None:
            y = (
                torch.add(b.to(x.dtype).reshape(bias_shape) * gain, x, alpha=gain)
                if gain != 1
                else x + b.to(x.dtype).reshape(bias_shape)
            )
        else:
            y = x * gain if gain != 1 else x
        if act == "lrelu":
            y = F.leaky_relu_(y, alpha) if y is not x else F.leaky_relu(y, alpha)
        elif act == "relu":
            y = F.relu_(y) if y is not x else F.relu(y)
        elif act != "linear":
            raise ValueError(f"unknown activation {act!r}")
    else:
        y = x + b.to(x.dtype).reshape(bias_shape) if b is not None else x
        y = spec.func(y, alpha)
        if gain != 1:
            y = y * gain
    if clamp is not None and clamp >= 0:
        y = y.clamp(-clamp, clamp)
    return y


def setup_filter(
    f: Sequence[float] | torch.Tensor | float,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turn filter taps into the float32 tensor the resampling ops expect.

    A 1-D list of fewer than 8 taps becomes the 2-D outer product (as the reference stores it, e.g. the
    `[4, 4]` `resample_filter` buffers for `[1, 3, 3, 1]`); `normalize` makes the taps sum to 1.
    """
    filt = torch.as_tensor(f, dtype=torch.float32)
    if filt.ndim == 0:
        filt = filt[None]
    if separable is None:
        separable = filt.ndim == 1 and filt.numel() >= 8
    if filt.ndim == 1 and not separable:
        filt = torch.outer(filt, filt)
    if normalize:
        filt = filt / filt.sum()
    if flip_filter:
        filt = filt.flip(list(range(filt.ndim)))
    return filt * (gain ** (filt.ndim / 2))


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    vx, vy = value
    return int(vx), int(vy)


def _padding4(padding: Padding) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return int(px), int(px), int(py), int(py)
    px0, px1, py0, py1 = padding
    return int(px0), int(px1), int(py0), int(py1)


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def _depthwise(f: torch.Tensor, channels: int, dtype: torch.dtype) -> torch.Tensor:
    """The filter as a `[C, 1, fh, fw]` depthwise conv weight (correlation form, i.e. already flipped)."""
    return f.to(dtype)[None, None].expand(channels, 1, *f.shape)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (or crop), FIR-filter with `f`, downsample by keeping every k-th pixel.

    `f=None` means the identity filter; `gain` scales the filter taps (`gain=up**2` keeps the mean of an
    upsampled image). `impl="ref"` runs the literal four steps; `impl="fast"` never materialises the zeros
    or the discarded pixels (transposed / strided depthwise convolution).
    """
    impl = _resolve(impl)
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    if impl == "ref":
        return _upfirdn2d_ref(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)
    if f.ndim == 1:
        y = _upfirdn_1d(x, f, upx, downx, px0, px1, flip_filter, gain, axis=3)
        return _upfirdn_1d(y, f, upy, downy, py0, py1, flip_filter, gain, axis=2)
    return _upfirdn2d_fast(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)


def _upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor,
    upx: int,
    upy: int,
    downx: int,
    downy: int,
    px0: int,
    px1: int,
    py0: int,
    py1: int,
    flip_filter: bool,
    gain: float,
) -> torch.Tensor:
    n, c, h, w = x.shape
    # Upsample by inserting zeros.
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(n, c, h * upy, w * upx)
    # Pad (positive) or crop (negative).
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # FIR filter: conv2d is a correlation, so the taps are flipped unless flip_filter asks otherwise.
    filt = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        filt = filt.flip(list(range(filt.ndim)))
    if filt.ndim == 2:
        x = F.conv2d(x, filt[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        x = F.conv2d(x, filt[None, None, None, :].repeat(c, 1, 1, 1), groups=c)
        x = F.conv2d(x, filt[None, None, :, None].repeat(c, 1, 1, 1), groups=c)
    # Downsample by keeping every k-th pixel.
    return x[:, :, ::downy, ::downx]


def _crop_pad(x: torch.Tensor, px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    """Pad with zeros where positive, crop where negative (F.pad does both)."""
    if px0 == px1 == py0 == py1 == 0:
        return x
    return F.pad(x, [px0, px1, py0, py1])


def _upfirdn2d_fast(
    x: torch.Tensor,
    f: torch.Tensor,
    upx: int,
    upy: int,
    downx: int,
    downy: int,
    px0: int,
    px1: int,
    py0: int,
    py1: int,
    flip_filter: bool,
    gain: float,
) -> torch.Tensor:
    c = x.shape[1]
    fh, fw = f.shape
    filt = f * (gain ** (f.ndim / 2))
    if upx == 1 and upy == 1:
        if not flip_filter:
            filt = filt.flip([0, 1])
        weight = _depthwise(filt, c, x.dtype)
        if px0 == px1 >= 0 and py0 == py1 >= 0:  # symmetric padding: let the convolution pad (no copy)
            return F.conv2d(x, weight, stride=(downy, downx), padding=(py0, px0), groups=c)
        return F.conv2d(_crop_pad(x, px0, px1, py0, py1), weight, stride=(downy, downx), groups=c)
    # Zero insertion + padding + correlation == transposed convolution with the unflipped taps, cropped.
    if flip_filter:
        filt = filt.flip([0, 1])
    n, _, h, w = x.shape
    # Output of the zero-stuffed, padded, filtered image covers positions [-p0, up*size - 1 + p1 - (f - 1)].
    x = F.conv_transpose2d(x, _depthwise(filt, c, x.dtype), stride=(upy, upx), groups=c)
    # conv_transpose2d output index j corresponds to stuffed position j - (f - 1); the reference output
    # index i corresponds to stuffed position i - p0, so we keep j = i - p0 + f - 1.
    full_h, full_w = x.shape[2], x.shape[3]
    out_h = h * upy + py0 + py1 - fh + 1
    out_w = w * upx + px0 + px1 - fw + 1
    start_y, start_x = fh - 1 - py0, fw - 1 - px0
    pad_top, pad_left = max(-start_y, 0), max(-start_x, 0)
    pad_bottom = max(start_y + out_h - full_h, 0)
    pad_right = max(start_x + out_w - full_w, 0)
    if pad_top or pad_left or pad_bottom or pad_right:
        x = F.pad(x, [pad_left, pad_right, pad_top, pad_bottom])
        start_y += pad_top
        start_x += pad_left
    x = x[:, :, start_y : start_y + out_h : downy, start_x : start_x + out_w : downx]
    return x


def _upfirdn_1d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int,
    down: int,
    p0: int,
    p1: int,
    flip_filter: bool,
    gain: float,
    axis: int,
) -> torch.Tensor:
    """One separable pass of `upfirdn2d` along width (`axis=3`) or height (`axis=2`)."""
    filt = (f * math.sqrt(gain))[None, :] if axis == 3 else (f * math.sqrt(gain))[:, None]
    if axis == 3:
        return _upfirdn2d_fast(x, filt, up, 1, down, 1, p0, p1, 0, 0, flip_filter, 1.0)
    return _upfirdn2d_fast(x, filt, 1, up, 1, down, 0, 0, p0, p1, flip_filter, 1.0)


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 2,
    padding: Padding = 0,
    gain: float = 1.0,
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample by `up` with FIR filter `f` (output size `up * input`); keeps the image mean."""
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    p = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up, impl=impl)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: int = 2,
    padding: Padding = 0,
    gain: float = 1.0,
    impl: str | None = None,
) -> torch.Tensor:
    """Low-pass filter with `f` and downsample by `down` (output size `input / down`)."""
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    p = [
        px0 + (fw - down + 1) // 2,
        px1 + (fw - down) // 2,
        py0 + (fh - down + 1) // 2,
        py1 + (fh - down) // 2,
    ]
    return upfirdn2d(x, f, down=down, padding=p, gain=gain, impl=impl)


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    """conv2d (correlation) or conv_transpose2d; `flip_weight=False` turns correlation into convolution."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    impl: str | None = None,
) -> torch.Tensor:
    """2-D convolution with optional FIR up/down-sampling, in the reference's order of operations.

    `w` is `[out, in/groups, kh, kw]`; `padding` is relative to the upsampled image. Upsampling uses a
    transposed convolution followed by the FIR filter; downsampling filters first, then a strided conv.
    """
    impl = _resolve(impl)
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=impl)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(
            x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter, impl=impl
        )
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=impl)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
            w = w.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(
            x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight
        )
        x = upfirdn2d(
            x,
            f,
            padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt],
            gain=up**2,
            flip_filter=flip_filter,
            impl=impl,
        )
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl=impl)
        return x
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up**2, impl=impl)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl=impl)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
    impl: str | None = None,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution: per-sample input scaling `styles` [N, I], optional demodulation.

    `fused_modconv=True` builds per-sample weights and runs one grouped convolution; `False` scales the
    activations before and after a shared convolution (mathematically equal, faster on CPU and in training).
    `noise` (broadcastable to the output) is added after demodulation.
    """
    impl = _resolve(impl)
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so the per-sample weights cannot overflow in half precision (the reference does too).
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    # A 1x1 modulated conv is fastest as one batched matmul with per-sample weights, whichever form is asked.
    one_by_one = impl == "fast" and kh == kw == 1 and up == down == 1 and padding == 0
    w = None
    dcoefs = None
    if fused_modconv or one_by_one or (demodulate and impl == "ref"):
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [NOIkk]
    if demodulate and w is not None:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [NO]
    elif demodulate:
        # sum_ik (W_oik s_ni)^2 = sum_i s_ni^2 sum_k W_oik^2: a small matmul, no [N, O, I, k, k] tensor.
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [NO]

    if not fused_modconv and not one_by_one:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(
            x,
            weight.to(x.dtype),
            resample_filter,
            up=up,
            down=down,
            padding=padding,
            flip_weight=flip_weight,
            impl=impl,
        )
        if demodulate and noise is not None and impl == "fast":
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    if demodulate:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)
    if one_by_one:  # per-sample 1x1 conv == batched matrix product over pixels: [N, HW, I] @ [N, I, O]
        n, _, h, wd = x.shape
        pixels = x.permute(0, 2, 3, 1).reshape(n, h * wd, in_channels)
        y = torch.bmm(pixels, w.reshape(n, out_channels, in_channels).transpose(1, 2).to(x.dtype))
        y = y.reshape(n, h, wd, out_channels).permute(0, 3, 1, 2)
        return y + noise.to(y.dtype) if noise is not None else y
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x,
        w.to(x.dtype),
        resample_filter,
        up=up,
        down=down,
        padding=padding,
        groups=batch_size,
        flip_weight=flip_weight,
        impl=impl,
    )
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def modulated_conv2d_bias_act(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    bias: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    flip_weight: bool = True,
    fused_modconv: bool = True,
    act: str = "lrelu",
    gain: float | None = None,
    clamp: float | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """Demodulated `modulated_conv2d`, then `bias_act`: all of a synthesis layer after its affine.

    The fast non-fused path folds the (positive) activation gain into the demodulation coefficients, the
    noise and the bias, and adds the bias in place: the full-size activations are read three times after
    the convolution instead of five, forward and backward.
    """
    impl = _resolve(impl)
    spec = ACTIVATIONS[act]
    gain_value = spec.def_gain if gain is None else float(gain)
    if impl == "ref" or fused_modconv or gain_value <= 0 or x.dtype == torch.float16:
        y = modulated_conv2d(
            x,
            weight,
            styles,
            noise=noise,
            up=up,
            padding=padding,
            resample_filter=resample_filter,
            flip_weight=flip_weight,
            fused_modconv=fused_modconv,
            impl=impl,
        )
        return bias_act(y, bias, act=act, gain=gain, clamp=clamp, impl=impl)
    batch_size = x.shape[0]
    dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt() * gain_value  # [NO]
    x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
    x = conv2d_resample(
        x, weight.to(x.dtype), resample_filter, up=up, padding=padding, flip_weight=flip_weight, impl=impl
    )
    scale = dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
    y = torch.addcmul(noise.to(x.dtype) * gain_value, x, scale) if noise is not None else x * scale
    y = y.add_(bias.to(x.dtype).reshape(1, -1, 1, 1) * gain_value)
    if act == "lrelu":
        y = F.leaky_relu_(y, spec.def_alpha)
    elif act == "relu":
        y = F.relu_(y)
    if clamp is not None and clamp >= 0:
        y = y.clamp(-clamp, clamp)
    return y
