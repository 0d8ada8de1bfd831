"""StyleSpace: style codes are the affine maps' outputs, laid out per layer, and render the same image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.gan.networks import Generator
from stylesurv.gan.render import broadcast_ws, style_space_view, synthesize
from stylesurv.gan.stylespace import StyleSpaceGenerator, style_dim, style_layers, styles_from_codes


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(3)
    return Generator(
        z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
        mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 64, "channel_max": 8},
    ).eval()  # fmt: skip


def wplus_codes(generator: Generator, n: int, seed: int) -> np.ndarray:
    """Mapped codes with independent per-layer noise, so that every W+ layer differs."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        ws = generator.mapping(torch.from_numpy(rng.standard_normal((n, 8)).astype(np.float32)), None)
    return ws.numpy() + 0.3 * rng.standard_normal(ws.shape).astype(np.float32)


def test_layers_cover_every_affine_map_once_in_contiguous_slices(generator: Generator) -> None:
    layers = style_layers(generator)
    affines = [name for name, _ in generator.synthesis.named_modules() if name.endswith("affine")]
    assert sorted(f"{layer.name}.affine" for layer in layers) == sorted(affines)
    assert layers[0].start == 0
    assert all(a.stop == b.start for a, b in zip(layers[:-1], layers[1:], strict=True))
    assert (
        style_dim(generator)
        == layers[-1].stop
        == sum(m.weight.shape[0] for n, m in generator.synthesis.named_modules() if n.endswith("affine"))
    )
    # 16 px, skip architecture: b4 conv1 + torgb, then conv0, conv1, torgb per block; toRGB shares the
    # code of the next block's conv0.
    assert [(layer.name, layer.ws_index) for layer in layers] == [
        ("b4.conv1", 0), ("b4.torgb", 1), ("b8.conv0", 1), ("b8.conv1", 2), ("b8.torgb", 3),
        ("b16.conv0", 3), ("b16.conv1", 4), ("b16.torgb", 5),
    ]  # fmt: skip


def test_style_codes_render_exactly_the_image_of_their_wplus_codes(generator: Generator) -> None:
    ws = wplus_codes(generator, 3, seed=0)
    styles = styles_from_codes(generator, ws)
    direct = synthesize(generator, ws)
    via_styles = synthesize(StyleSpaceGenerator(generator), broadcast_ws(styles, 1))
    np.testing.assert_allclose(via_styles, direct, rtol=0, atol=1e-5)
    # The hooks are gone afterwards: W+ rendering is unchanged and no module keeps a hook.
    np.testing.assert_array_equal(synthesize(generator, ws), direct)
    assert not any(m._forward_hooks for m in generator.modules())


def test_styles_are_affine_in_the_code_and_w_means_every_layer_alike(generator: Generator) -> None:
    a, b = wplus_codes(generator, 2, seed=1)
    mixed = styles_from_codes(generator, (0.3 * a + 0.7 * b)[None])[0]
    ends = styles_from_codes(generator, np.stack([a, b]))
    np.testing.assert_allclose(mixed, 0.3 * ends[0] + 0.7 * ends[1], rtol=1e-5, atol=1e-5)
    w = a[:1].mean(axis=0, keepdims=True)  # one W code [1, w_dim]
    np.testing.assert_array_equal(
        styles_from_codes(generator, w), styles_from_codes(generator, np.repeat(w[:, None], 6, axis=1))
    )


def test_view_of_latents_and_wrong_shapes(generator: Generator) -> None:
    ws = wplus_codes(generator, 4, seed=4)
    latents = Latents(patient_id=np.array(["a", "b", "c", "d"]), wplus=ws)
    with pytest.raises(InputError, match="no style codes"):
        latents.codes("styles")
    view, styled = style_space_view(latents, generator)
    np.testing.assert_allclose(view.w, styles_from_codes(generator, ws))
    assert view.codes("styles") is view.styles and styled.w_dim == view.w.shape[1] and styled.num_ws == 1
    with pytest.raises(InputError, match="do not fit this generator"):
        styles_from_codes(generator, np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="style codes must be"):
        styled.synthesis(torch.zeros(2, view.w.shape[1]))
