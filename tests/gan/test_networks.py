"""StyleGAN2 networks: NVIDIA state-dict layout, mapping/truncation behaviour, equal forms, discriminator."""

import itertools
import json
import math

import pytest
import torch

from stylesurv.gan import ops
from stylesurv.gan.networks import Discriminator, Generator, MinibatchStdLayer


def _meta_generator(**kwargs) -> Generator:  # noqa: ANN003
    with torch.device("meta"):
        return Generator(**kwargs)


def _meta_discriminator(**kwargs) -> Discriminator:  # noqa: ANN003
    with torch.device("meta"):
        return Discriminator(**kwargs)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tiny_g(res: int = 16, **synthesis: object) -> Generator:
    synthesis_kwargs = dict(channel_base=128, channel_max=16, **synthesis)
    return Generator(8, 0, 8, res, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=synthesis_kwargs)


def _with_noise_strength(g: Generator, value: float) -> Generator:
    for name, param in g.named_parameters():
        if name.endswith("noise_strength"):
            param.data.fill_(value)
    return g


FFHQ1024_SYNTHESIS = dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256)


def test_ffhq1024_generator_state_dict_layout() -> None:
    # 182 tensors and 30.37 M parameters: stylegan2-ada-pytorch's FFHQ-1024 G (issue 3; the official
    # ffhq.pkl's G_ema state dict), 18 ws, names as in training/networks.py.
    g = _meta_generator(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=1024,
        img_channels=3,
        synthesis_kwargs=FFHQ1024_SYNTHESIS,
    )
    sd = g.state_dict()
    assert len(sd) == 182
    assert round(_n_params(g) / 1e6, 2) == 30.37
    assert g.num_ws == 18
    expected = {
        "mapping.w_avg": (512,),
        "mapping.fc0.weight": (512, 512),
        "mapping.fc7.bias": (512,),
        "synthesis.b4.const": (512, 4, 4),
        "synthesis.b4.resample_filter": (4, 4),
        "synthesis.b4.conv1.weight": (512, 512, 3, 3),
        "synthesis.b4.conv1.noise_const": (4, 4),
        "synthesis.b4.conv1.noise_strength": (),
        "synthesis.b4.conv1.affine.weight": (512, 512),
        "synthesis.b4.torgb.weight": (3, 512, 1, 1),
        "synthesis.b64.conv0.weight": (512, 512, 3, 3),
        "synthesis.b128.conv0.weight": (256, 512, 3, 3),
        "synthesis.b1024.conv0.weight": (32, 64, 3, 3),
        "synthesis.b1024.conv0.affine.weight": (64, 512),
        "synthesis.b1024.conv0.affine.bias": (64,),
        "synthesis.b1024.conv1.noise_const": (1024, 1024),
        "synthesis.b1024.conv0.resample_filter": (4, 4),
        "synthesis.b1024.torgb.bias": (3,),
    }
    for name, shape in expected.items():
        assert tuple(sd[name].shape) == shape, name
    assert not any(k.startswith("mapping.embed") for k in sd)
    assert [b.use_fp16 for b in (g.synthesis.b64, g.synthesis.b128, g.synthesis.b1024)] == [False, True, True]


def test_ffhq256_generator_and_discriminator_layout() -> None:
    # stylegan2-ada-pytorch `paper256` config: channel_base 16384, 8 mapping layers. ANCHORS.md measured the
    # reference at 24.8 M (G) / 24.0 M (D) parameters.
    g = _meta_generator(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=256,
        img_channels=3,
        synthesis_kwargs=dict(channel_base=16384, channel_max=512, num_fp16_res=4, conv_clamp=256),
    )
    d = _meta_discriminator(
        c_dim=0,
        img_resolution=256,
        img_channels=3,
        channel_base=16384,
        channel_max=512,
        num_fp16_res=4,
        conv_clamp=256,
        epilogue_kwargs=dict(mbstd_group_size=8),
    )
    assert round(_n_params(g) / 1e6, 1) == 24.8
    assert round(_n_params(d) / 1e6, 1) == 24.0
    assert g.num_ws == 14
    assert len(g.state_dict()) == 1 + 16 + 13 + 6 * 19  # w_avg, mapping, b4, six upsampling blocks of 19
    sd = d.state_dict()
    expected = {
        "b256.fromrgb.weight": (64, 3, 1, 1),
        "b256.conv0.weight": (64, 64, 3, 3),
        "b256.conv1.weight": (128, 64, 3, 3),
        "b256.skip.weight": (128, 64, 1, 1),
        "b256.resample_filter": (4, 4),
        "b8.conv1.resample_filter": (4, 4),
        "b4.conv.weight": (512, 513, 3, 3),
        "b4.fc.weight": (512, 8192),
        "b4.out.weight": (1, 512),
        "b4.out.bias": (1,),
    }
    for name, shape in expected.items():
        assert tuple(sd[name].shape) == shape, name
    assert "b256.skip.bias" not in sd and "b128.fromrgb.weight" not in sd


@pytest.mark.parametrize(
    "z_dim,layers,base,cmax,res,g_m,d_m",
    [
        (128, 4, 4096, 128, 64, 1.43, 1.47),  # ANCHORS.md, the reference's parameter counts per config
        (256, 4, 8192, 256, 64, 5.70, 5.85),
        (128, 2, 2048, 128, 32, 1.05, 1.15),
    ],
)
def test_parameter_counts_match_reference_configs(
    z_dim: int, layers: int, base: int, cmax: int, res: int, g_m: float, d_m: float
) -> None:
    g = _meta_generator(
        z_dim=z_dim,
        c_dim=0,
        w_dim=z_dim,
        img_resolution=res,
        img_channels=3,
        mapping_kwargs=dict(num_layers=layers),
        synthesis_kwargs=dict(channel_base=base, channel_max=cmax),
    )
    d = _meta_discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=base, channel_max=cmax)
    assert round(_n_params(g) / 1e6, 2) == g_m
    assert round(_n_params(d) / 1e6, 2) == d_m


def test_mapping_lr_multiplier_and_init() -> None:
    # Equalized lr: weights stored as N(0, 1/lr^2) and scaled by lr / sqrt(fan_in) at run time (lr = 0.01).
    torch.manual_seed(0)
    g = Generator(64, 0, 64, 8, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64))
    fc0 = g.mapping.fc0
    assert fc0.weight_gain == pytest.approx(0.01 / math.sqrt(64))
    assert fc0.bias_gain == pytest.approx(0.01)
    assert fc0.weight.std().item() == pytest.approx(100, rel=0.05)
    assert g.synthesis.b4.conv1.affine.bias.eq(1).all()  # style affines start at bias 1
    assert g.synthesis.b4.conv1.noise_strength.item() == 0


def test_w_avg_tracking_and_truncation() -> None:
    torch.manual_seed(0)
    g = _tiny_g()
    z = torch.randn(5, 8)
    g.mapping.w_avg.fill_(0.5)
    ws = g.mapping(z, None)  # no update without update_emas, even in training mode
    assert g.mapping.w_avg.eq(0.5).all()
    g.mapping(z, None, update_emas=True)
    expected = 0.995 * 0.5 + 0.005 * ws[:, 0].mean(dim=0)  # beta = 0.995 (reference default)
    assert torch.allclose(g.mapping.w_avg, expected, atol=1e-6)
    assert ws.shape == (5, g.num_ws, 8) and torch.equal(ws[:, 0], ws[:, -1])

    avg = g.mapping.w_avg
    assert torch.allclose(g.mapping(z, None, truncation_psi=0), avg.expand(5, g.num_ws, 8))
    half = g.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(half[:, :2], avg + 0.5 * (ws[:, :2] - avg), atol=1e-6)
    assert torch.equal(half[:, 2:], ws[:, 2:])


def test_noise_modes() -> None:
    torch.manual_seed(0)
    g = _with_noise_strength(_tiny_g().eval(), 0.5)
    ws = g.mapping(torch.randn(2, 8), None)
    with torch.no_grad():
        const1 = g.synthesis(ws, noise_mode="const")
        const2 = g.synthesis(ws, noise_mode="const")
        rand = g.synthesis(ws, noise_mode="random")
        none = g.synthesis(ws, noise_mode="none")
        _with_noise_strength(g, 0.0)
        none_at_zero = g.synthesis(ws, noise_mode="none")
        const_at_zero = g.synthesis(ws, noise_mode="const")
    assert torch.equal(const1, const2)
    assert not torch.allclose(const1, rand) and not torch.allclose(const1, none)
    assert torch.allclose(none_at_zero, const_at_zero)
    with pytest.raises(ValueError, match="noise_mode"):
        g.synthesis(ws, noise_mode="bogus")


@pytest.mark.parametrize("architecture", ["skip", "orig", "resnet"])
def test_generator_forms_agree(architecture: str) -> None:
    # Fused vs non-fused modulated conv, channels-last vs contiguous, fast vs reference: one image.
    torch.manual_seed(0)
    g = _with_noise_strength(_tiny_g(architecture=architecture, conv_clamp=256), 0.3).eval()
    z = torch.randn(3, 8)
    with torch.no_grad():
        base = g(z, None, fused_modconv=False, channels_last=False)
        assert base.shape == (3, 3, 16, 16)
        for impl, fused, channels_last in itertools.product(["fast", "ref"], [True, False], [True, False]):
            with ops.default_impl(impl):
                img = g(z, None, fused_modconv=fused, channels_last=channels_last)
            assert torch.allclose(img, base, atol=1e-5), (impl, fused, channels_last)


@pytest.mark.parametrize("res", [4, 8, 32])
def test_generator_resolutions_and_gradients(res: int) -> None:
    torch.manual_seed(0)
    g = _tiny_g(res=res)
    assert g.num_ws == 2 * int(math.log2(res)) - 2
    ws = g.mapping(torch.randn(2, 8), None).detach().requires_grad_(True)
    img = g.synthesis(ws, noise_mode="random")
    assert img.shape == (2, 3, res, res)
    img.square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0


def test_conditional_generator_and_discriminator() -> None:
    torch.manual_seed(0)
    g = Generator(8, 4, 8, 8, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64))
    c = torch.eye(4)[[0, 1]]
    img = g(torch.randn(2, 8), c)
    assert "mapping.embed.weight" in g.state_dict()
    d = Discriminator(4, 8, 3, channel_base=64, channel_max=16)
    assert d.b4.cmap_dim == 16 and d.mapping.fc0.weight.shape == (16, 16)
    assert d(img, c).shape == (2, 1)
    with pytest.raises(ValueError, match="c must be"):
        g(torch.randn(2, 8), None)


@pytest.mark.parametrize("architecture", ["resnet", "skip", "orig"])
def test_discriminator_runs_and_forms_agree(architecture: str) -> None:
    torch.manual_seed(0)
    d = Discriminator(0, 16, 3, architecture=architecture, channel_base=128, channel_max=16, conv_clamp=256)
    img = torch.randn(4, 3, 16, 16, requires_grad=True)
    out = d(img, None, channels_last=False)
    assert out.shape == (4, 1)
    assert torch.allclose(d(img, None, channels_last=True), out, atol=1e-5)
    out.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


def test_freeze_layers_become_buffers() -> None:
    d = Discriminator(0, 16, 3, channel_base=128, channel_max=16, block_kwargs=dict(freeze_layers=2))
    names = {n for n, _ in d.named_parameters()}
    assert "b16.fromrgb.weight" not in names and "b16.conv1.weight" in names
    assert "b16.fromrgb.weight" in d.state_dict()


def test_minibatch_std_hand_computed() -> None:
    # Two samples, constant features 1 and 3: group std = |3 - 1| / 2 = 1 for both samples.
    x = torch.stack([torch.full((2, 2, 2), 1.0), torch.full((2, 2, 2), 3.0)])
    out = MinibatchStdLayer(group_size=2)(x)
    assert out.shape == (2, 3, 2, 2)
    assert torch.allclose(out[:, 2], torch.ones(2, 2, 2), atol=1e-6)


def test_init_kwargs_rebuild_the_same_network() -> None:
    torch.manual_seed(3)
    g = _tiny_g(conv_clamp=256)
    assert json.loads(json.dumps(g.init_kwargs)) == g.init_kwargs
    torch.manual_seed(3)
    twin = Generator(**g.init_kwargs)
    for (name, a), (_, b) in zip(g.state_dict().items(), twin.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    d = Discriminator(0, 16, 3, channel_base=128, channel_max=16)
    assert Discriminator(**d.init_kwargs).init_kwargs == d.init_kwargs
