"""StyleGAN2 ops: hand-computed FIR resampling, fast paths equal to the plain reference paths."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from stylesurv.gan import ops


def _row(values: list[float]) -> torch.Tensor:
    """A [1, 1, 1, W] image holding one row of pixels."""
    return torch.tensor(values, dtype=torch.float64)[None, None, None, :]


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_upfirdn2d_upsample_hand_computed(impl: str) -> None:
    # Zero insertion gives [1, 0, 2, 0, 3, 0]; one zero of right padding; convolving with [1, 1] sums pairs.
    f = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    y = ops.upfirdn2d(_row([1, 2, 3]), f, up=[2, 1], padding=[0, 1, 0, 0], impl=impl)
    assert y.flatten().tolist() == [1, 2, 2, 3, 3, 0]


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_upfirdn2d_asymmetric_filter_and_flip(impl: str) -> None:
    # Padded row p = [0, 1, 2, 3, 4]; convolution with f = [1, 2]: y[i] = p[i + 1] + 2 p[i] = [1, 4, 7, 10],
    # keep every 2nd -> [1, 7]. Correlation (flip_filter): y[i] = p[i] + 2 p[i + 1] = [2, 5, 8, 11] -> [2, 8].
    f = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    x = _row([1, 2, 3, 4])
    assert ops.upfirdn2d(x, f, down=[2, 1], padding=[1, 0, 0, 0], impl=impl).flatten().tolist() == [1, 7]
    flipped = ops.upfirdn2d(x, f, down=[2, 1], padding=[1, 0, 0, 0], flip_filter=True, impl=impl)
    assert flipped.flatten().tolist() == [2, 8]


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_upsample2d_constant_image(impl: str) -> None:
    # [1, 3, 3, 1] upsampling interpolates with weights 1/4 and 3/4 per axis: a constant stays constant
    # inside; at the border one neighbour is a zero pad, so edges get 3/4 and corners (3/4)^2.
    f = ops.setup_filter([1, 3, 3, 1])
    y = ops.upsample2d(torch.ones(1, 1, 4, 4), f, impl=impl)[0, 0]
    assert y.shape == (8, 8)
    assert torch.allclose(y[1:-1, 1:-1], torch.ones(6, 6))
    assert torch.allclose(y[0, 1:-1], torch.full((6,), 0.75))
    assert y[0, 0].item() == pytest.approx(0.5625)


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_downsample2d_constant_image(impl: str) -> None:
    # Taps [1, 3, 3, 1] / 8 with one pixel of zero padding: the border output loses the 1/8 tap -> 7/8.
    f = ops.setup_filter([1, 3, 3, 1])
    y = ops.downsample2d(torch.ones(1, 1, 8, 8), f, impl=impl)[0, 0]
    assert y.shape == (4, 4)
    assert torch.allclose(y[1:-1, 1:-1], torch.ones(2, 2))
    assert y[0, 1].item() == pytest.approx(7 / 8)
    assert y[0, 0].item() == pytest.approx(49 / 64)


def test_setup_filter_matches_reference_buffers() -> None:
    # The reference stores [1, 3, 3, 1] as the normalised 4x4 outer product; 8+ taps stay separable.
    f = ops.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4)
    assert f.sum().item() == pytest.approx(1.0)
    assert f[0, 0].item() == pytest.approx(1 / 64)
    assert ops.setup_filter(list(range(1, 9))).shape == (8,)


@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1], list(range(1, 9))])
def test_upfirdn2d_fast_equals_reference(taps: list[int]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 11, 13, dtype=torch.float64, generator=gen)
    f = ops.setup_filter(taps).double()
    f = f + 0.1 * torch.rand(f.shape, dtype=torch.float64, generator=gen)  # break the symmetry
    for up, down, pad, flip in itertools.product(
        [1, 2, 3], [1, 2], [0, 2, [3, 1, 2, 4], [-1, 2, 3, -2]], [0, 1]
    ):
        kwargs = dict(up=up, down=down, padding=pad, flip_filter=bool(flip), gain=1.7)
        ref = ops.upfirdn2d(x, f, impl="ref", **kwargs)
        fast = ops.upfirdn2d(x, f, impl="fast", **kwargs)
        assert fast.shape == ref.shape, kwargs
        assert torch.allclose(fast, ref, atol=1e-12), kwargs


@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
@pytest.mark.parametrize("gain,clamp", [(None, None), (0.5, 0.3), (1.0, None)])
def test_bias_act_fast_equals_reference(act: str, gain: float | None, clamp: float | None) -> None:
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    outs = [ops.bias_act(x, b, act=act, gain=gain, clamp=clamp, impl=impl) for impl in ("ref", "fast")]
    grads = [torch.autograd.grad(out.square().sum(), [x, b]) for out in outs]
    assert torch.allclose(outs[0], outs[1], atol=1e-12)
    for g_ref, g_fast in zip(grads[0], grads[1], strict=True):
        assert torch.allclose(g_ref, g_fast, atol=1e-12)


def test_bias_act_known_values() -> None:
    # lrelu: slope 0.2, gain sqrt(2) by default (the reference's defaults); clamp applies after the gain.
    x = torch.tensor([[-1.0, 2.0]])
    out = ops.bias_act(x, torch.tensor([0.0, 1.0]), act="lrelu")
    assert torch.allclose(out, torch.tensor([[-0.2 * math.sqrt(2), 3 * math.sqrt(2)]]))
    assert torch.allclose(ops.bias_act(x, act="lrelu", clamp=1.0), torch.tensor([[-0.2 * math.sqrt(2), 1.0]]))
    assert torch.allclose(ops.bias_act(x, act="relu"), torch.tensor([[0.0, 2 * math.sqrt(2)]]))


def _per_sample_modconv(x, weight, styles, demodulate, up, noise, f):  # noqa: ANN001, ANN202
    """Independent formula: for each sample build the modulated (demodulated) kernel and convolve alone."""
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        xi = x[i : i + 1]
        if up == 1:
            y = F.conv2d(xi, w, padding=weight.shape[-1] // 2)
        else:
            # Zero-stuff + pad + FIR (the literal reference upfirdn2d), then a true convolution.
            xi = ops.upfirdn2d(xi, f, up=2, padding=[3, 2, 3, 2], gain=4, impl="ref")
            y = F.conv2d(xi, w.flip([2, 3]))
        outs.append(y)
    y = torch.cat(outs)
    return y + noise if noise is not None else y


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("with_noise", [True, False])
def test_modulated_conv2d_fused_equals_nonfused(up: int, demodulate: bool, with_noise: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 5, 5, dtype=torch.float64, generator=gen)
    weight = torch.randn(4, 6, 3, 3, dtype=torch.float64, generator=gen)
    styles = torch.randn(3, 6, dtype=torch.float64, generator=gen)
    noise = torch.randn(3, 1, 5 * up, 5 * up, dtype=torch.float64, generator=gen) if with_noise else None
    f = ops.setup_filter([1, 3, 3, 1]).double()
    kwargs = dict(
        noise=noise, up=up, padding=1, resample_filter=f, demodulate=demodulate, flip_weight=(up == 1)
    )
    expected = _per_sample_modconv(x, weight, styles, demodulate, up, noise, f)
    for fused, impl in itertools.product([True, False], ["ref", "fast"]):
        out = ops.modulated_conv2d(x, weight, styles, fused_modconv=fused, impl=impl, **kwargs)
        assert out.shape == expected.shape
        assert torch.allclose(out, expected, atol=1e-10), (fused, impl)


def test_modulated_conv2d_gradients_agree_between_forms() -> None:
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    styles = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    grads = []
    for fused in (True, False):
        out = ops.modulated_conv2d(x, weight, styles, demodulate=False, fused_modconv=fused)
        grads.append(torch.autograd.grad(out.sin().sum(), [x, weight, styles]))
    for g_fused, g_plain in zip(*grads, strict=True):
        assert torch.allclose(g_fused, g_plain, atol=1e-10)


def test_conv2d_resample_down_equals_filter_then_strided_conv() -> None:
    # Downsampling conv == FIR low-pass (pad 2) then a stride-2 correlation, by the reference's definition.
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    expected = F.conv2d(ops.upfirdn2d(x, f, padding=2, impl="ref"), w, stride=2)
    for impl in ("ref", "fast"):
        assert torch.allclose(
            ops.conv2d_resample(x, w, f, down=2, padding=1, impl=impl), expected, atol=1e-12
        )


def test_bf16_modulated_conv_close_to_fp32() -> None:
    x = torch.randn(2, 8, 8, 8)
    weight = torch.randn(8, 8, 3, 3)
    styles = torch.randn(2, 8)
    f = ops.setup_filter([1, 3, 3, 1])
    ref = ops.modulated_conv2d(x, weight, styles, up=2, padding=1, resample_filter=f, flip_weight=False)
    low = ops.modulated_conv2d(
        x.bfloat16(),
        weight.bfloat16(),
        styles.bfloat16(),
        up=2,
        padding=1,
        resample_filter=f,
        flip_weight=False,
    )
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max().item() < 0.05 * ref.abs().max().item()


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize(
    "act,gain,clamp", [("lrelu", None, None), ("lrelu", 0.7, 0.5), ("linear", 1.0, None)]
)
def test_modulated_conv2d_bias_act_fast_equals_reference(
    up: int, act: str, gain: float | None, clamp: float | None
) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64, generator=gen).requires_grad_(True)
    weight = torch.randn(3, 5, 3, 3, dtype=torch.float64, generator=gen).requires_grad_(True)
    styles = torch.randn(2, 5, dtype=torch.float64, generator=gen).requires_grad_(True)
    bias = torch.randn(3, dtype=torch.float64, generator=gen).requires_grad_(True)
    noise = torch.randn(2, 1, 4 * up, 4 * up, dtype=torch.float64, generator=gen).requires_grad_(True)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    inputs = [x, weight, styles, bias, noise]
    results = []
    for impl in ("ref", "fast"):
        out = ops.modulated_conv2d_bias_act(
            x,
            weight,
            styles,
            bias,
            noise=noise,
            up=up,
            padding=1,
            resample_filter=f,
            flip_weight=(up == 1),
            fused_modconv=False,
            act=act,
            gain=gain,
            clamp=clamp,
            impl=impl,
        )
        results.append((out, torch.autograd.grad(out.sin().sum(), inputs)))
    (ref, ref_grads), (fast, fast_grads) = results
    assert torch.allclose(fast, ref, atol=1e-10)
    for g_ref, g_fast in zip(ref_grads, fast_grads, strict=True):
        assert torch.allclose(g_fast, g_ref, atol=1e-10)


@pytest.mark.parametrize("demodulate", [True, False])
def test_one_by_one_modulated_conv_matches_per_sample_formula(demodulate: bool) -> None:
    # The fast path runs 1x1 modulated convs as one batched matmul; it must equal every other form.
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 6, 5, 4, dtype=torch.float64, generator=gen).contiguous(
        memory_format=torch.channels_last
    )
    weight = torch.randn(2, 6, 1, 1, dtype=torch.float64, generator=gen)
    styles = torch.randn(3, 6, dtype=torch.float64, generator=gen)
    noise = torch.randn(3, 1, 5, 4, dtype=torch.float64, generator=gen)
    expected = _per_sample_modconv(x, weight, styles, demodulate, 1, noise, None)
    for fused, impl in itertools.product([True, False], ["ref", "fast"]):
        out = ops.modulated_conv2d(
            x, weight, styles, noise=noise, demodulate=demodulate, fused_modconv=fused, impl=impl
        )
        assert torch.allclose(out, expected, atol=1e-10), (fused, impl)
