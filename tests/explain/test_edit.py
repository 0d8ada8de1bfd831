import numpy as np
import pytest
import torch
from PIL import Image

from stylesurv.explain.direction import health_direction
from stylesurv.explain.edit import image_grid, render_edits, save_gif, symmetric_alphas
from stylesurv.gan.render import to_uint8
from tests.explain.toys import region_generator


def test_symmetric_alphas_include_zero() -> None:
    np.testing.assert_allclose(symmetric_alphas(2.0, 5), [-2, -1, 0, 1, 2])
    with pytest.raises(ValueError):
        symmetric_alphas(2.0, 4)


def test_edit_grid_shape_and_alpha_zero_reproduces_the_generator() -> None:
    gen = region_generator()
    codes = np.random.default_rng(0).standard_normal((3, gen.num_ws, gen.w_dim)) * 0.3
    d = health_direction(np.random.default_rng(1).standard_normal((gen.num_ws, gen.w_dim)), codes)
    alphas = symmetric_alphas(2.0, 5)
    edits = render_edits(gen, codes, d, alphas)
    assert edits.shape == (3, 5, 8, 8, 3) and edits.dtype == np.uint8
    direct = to_uint8(gen.synthesis(torch.from_numpy(codes.astype(np.float32)), noise_mode="const"))
    np.testing.assert_array_equal(edits[:, 2], direct)
    assert not np.array_equal(edits[:, 0], edits[:, 4])  # the edit changes the picture
    grid = image_grid(edits, pad=2)
    assert grid.size == (5 * 8 + 6 * 2, 3 * 8 + 4 * 2)


def test_w_codes_are_broadcast_to_every_layer() -> None:
    gen = region_generator()
    codes = np.random.default_rng(0).standard_normal((2, gen.w_dim))
    d = health_direction(np.ones(gen.w_dim), codes)
    edits = render_edits(gen, codes, d, [0.0])
    wplus = np.repeat(codes[:, None], gen.num_ws, axis=1).astype(np.float32)
    np.testing.assert_array_equal(
        edits[:, 0], to_uint8(gen.synthesis(torch.from_numpy(wplus), noise_mode="const"))
    )


def test_gif_sweeps_forth_and_back(tmp_path) -> None:
    images = np.random.default_rng(0).integers(0, 255, (2, 5, 8, 8, 3), dtype=np.uint8)
    save_gif(images, tmp_path / "a.gif", scale=2)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 8  # 5 forward + 3 back
        assert gif.size == (2 * 8 * 2, 8 * 2)


def test_alpha_zero_reproduces_the_real_stylegan2_generator() -> None:
    from stylesurv.gan.networks import Generator

    gen = Generator(
        z_dim=16,
        c_dim=0,
        w_dim=16,
        img_resolution=16,
        img_channels=3,
        mapping_kwargs={"num_layers": 1},
        synthesis_kwargs={"channel_base": 128, "channel_max": 16},
    )
    gen.eval()
    ws = gen.mapping(torch.randn(3, 16), None).detach().numpy()
    d = health_direction(np.random.default_rng(0).standard_normal((gen.num_ws, gen.w_dim)), ws)
    edits = render_edits(gen, ws, d, symmetric_alphas(1.0, 3), batch=2)
    direct = to_uint8(gen.synthesis(torch.from_numpy(ws), noise_mode="const"))
    np.testing.assert_array_equal(edits[:, 1], direct)
    assert np.abs(edits[:, 0].astype(int) - edits[:, 2].astype(int)).mean() > 0.5


def test_a_w_direction_moves_every_layer_of_wplus_codes_alike() -> None:
    gen = region_generator()
    rng = np.random.default_rng(3)
    wplus = rng.standard_normal((2, gen.num_ws, gen.w_dim))
    d = health_direction(rng.standard_normal(gen.w_dim), wplus.mean(axis=1))
    edits = render_edits(gen, wplus, d, [0.0, 1.5])
    moved = (wplus + d.offset(1.5)[None, None]).astype(np.float32)
    np.testing.assert_array_equal(
        edits[:, 1], to_uint8(gen.synthesis(torch.from_numpy(moved), noise_mode="const"))
    )
    np.testing.assert_allclose(
        d.attribute(moved.mean(axis=1)) - d.attribute(wplus.mean(axis=1)), 1.5, atol=1e-5
    )
