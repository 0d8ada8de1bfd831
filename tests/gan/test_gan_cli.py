"""`stylesurv gan convert | info | sample` end to end on a tiny generator."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylesurv.app.cli import main
from stylesurv.gan import rosinality
from stylesurv.gan.checkpoint import load_generator, save_networks
from stylesurv.gan.commands import parse_seeds
from stylesurv.gan.networks import Generator


@pytest.fixture
def tiny_ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    g = Generator(8, 0, 8, 8, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64))
    g.mapping.w_avg.normal_()
    path = tmp_path / "g.safetensors"
    save_networks(path, G_ema=g)
    return path


def test_parse_seeds() -> None:
    assert parse_seeds("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert parse_seeds("5") == [5]
    assert main(["gan", "sample", "x", "--outdir", "o", "--seeds", "3-1"]) == 1


def test_sample_writes_reference_seed_images(tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples"
    args = ["gan", "sample", str(tiny_ckpt), "--seeds", "0-2,7", "--trunc", "0.7", "--outdir", str(out)]
    assert main(["-q", *args]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "grid.png",
        "seed0000.png",
        "seed0001.png",
        "seed0002.png",
        "seed0007.png",
    ]
    # seed 7 must be z = RandomState(7).randn(1, z_dim) and pixels (x * 127.5 + 128).clamp(0, 255) as uint8.
    g = load_generator(tiny_ckpt)
    z = torch.from_numpy(np.random.RandomState(7).randn(1, 8)).float()
    with torch.no_grad():
        img = g(z, None, truncation_psi=0.7, noise_mode="const")[0]
    expected = (img.permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    assert np.array_equal(np.asarray(Image.open(out / "seed0007.png")), expected)
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (16, 16, 3)  # 4 images of 8 px on a 2 x 2 grid
    assert np.array_equal(grid[8:, 8:], expected)


def test_convert_and_info(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = load_generator(tiny_ckpt)
    pt = tmp_path / "rosinality.pt"
    torch.save({"g_ema": rosinality.generator_to_rosinality(g), "latent_avg": g.mapping.w_avg}, pt)
    dst = tmp_path / "converted.safetensors"
    assert main(["-q", "gan", "convert", str(pt), str(dst)]) == 0
    assert torch.equal(load_generator(dst).synthesis.b8.conv0.weight, g.synthesis.b8.conv0.weight)
    capsys.readouterr()
    assert main(["gan", "info", str(dst), "--json"]) == 0
    details = json.loads(capsys.readouterr().out)
    assert details["format"] == "safetensors"
    assert details["networks"]["G_ema"]["parameters"] == sum(p.numel() for p in g.parameters())
    assert details["extra"]["source_format"] == "rosinality"
    assert main(["gan", "info", str(dst)]) == 0
    assert "G_ema: Generator" in capsys.readouterr().out


def test_bad_checkpoint_exits_with_code_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"garbage" * 10)
    assert main(["gan", "info", str(bad)]) == 1
    assert main(["gan", "convert", str(tmp_path / "missing.pkl"), str(tmp_path / "x.safetensors")]) == 1
    assert not (tmp_path / "x.safetensors").exists()
