"""The training loop on tiny real networks: exact resume, Freeze-D, ADA in the loop, snapshot safety."""

import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stylesurv.core.errors import CheckpointError, InputError
from stylesurv.gan.networks import Discriminator, Generator
from stylesurv.gan.train import (
    TrainConfig,
    discriminator_layers,
    list_snapshots,
    load_snapshot,
    snapshot_generator,
    train,
)


def tiny_factory(g_kwargs: dict[str, Any], d_kwargs: dict[str, Any]) -> tuple[Generator, Discriminator]:
    """8 px StyleGAN2 networks with 8-dim latents and 16 channels, whatever the preset asked for."""
    res = g_kwargs["img_resolution"]
    G = Generator(
        8,
        0,
        8,
        res,
        3,
        mapping_kwargs={"num_layers": 1},
        synthesis_kwargs={"channel_base": 64, "channel_max": 16},
    )
    D = Discriminator(0, res, 3, channel_base=64, channel_max=16, epilogue_kwargs={"mbstd_group_size": 2})
    return G, D


def write_images(folder: Path, n: int = 12, side: int = 8, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(n):
        Image.fromarray(rng.randint(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"p{i:03d}.png")
    return folder


def options(data: Path, out: Path, **changes: Any) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        batch=4,
        kimg=0.024,
        tick_kimg=0.012,
        snap=1,
        aug="ada",
        p=0.3,
        seed=3,
        gamma=1.0,
    )
    base.update(changes)
    return TrainConfig(**base)


def test_two_n_steps_equal_n_plus_resume_plus_n(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")
    # 6 minibatches of 4: path length at steps 0 and 4, R1 at step 0, ADA adjustment at 4; split after 3.
    straight = train(options(data, tmp_path / "straight"), tiny_factory)
    first = train(options(data, tmp_path / "split", kimg=0.012), tiny_factory)
    assert first.nimg == 12
    resumed = train(options(data, tmp_path / "split"), tiny_factory)  # the run folder holds a snapshot
    assert resumed.nimg == straight.nimg == 24
    a, meta_a = load_snapshot(straight.snapshot)
    b, meta_b = load_snapshot(resumed.snapshot)
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert meta_a["ada"] == meta_b["ada"] and meta_a["pl_mean"] == meta_b["pl_mean"]
    assert meta_a["ada"]["p"] != 0.3  # ADA moved p
    assert (tmp_path / "split" / "stats.jsonl").read_text().count("\n") == 2
    assert len(list((tmp_path / "split" / "grids").glob("fakes-*.png"))) == 2


def test_continuing_with_other_options_is_refused(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")
    train(options(data, tmp_path / "run", kimg=0.004), tiny_factory)
    with pytest.raises(InputError, match="lr"):
        train(options(data, tmp_path / "run", kimg=0.008, lr=0.01), tiny_factory)


def test_freeze_d_keeps_first_layers_bit_identical(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")
    torch.manual_seed(3)
    _, D0 = tiny_factory({"img_resolution": 8}, {})
    names = [name for name, _ in discriminator_layers(D0)]
    assert names[:4] == ["b8.fromrgb", "b8.conv0", "b8.conv1", "b8.skip"]  # NVIDIA's Freeze-D layer order
    result = train(options(data, tmp_path / "run", kimg=0.016, freeze_d=2), tiny_factory)
    D1 = result.trainer.D
    before = dict(D0.named_parameters())
    for name, param in D1.named_parameters():
        frozen = name.startswith(("b8.fromrgb.", "b8.conv0."))
        assert torch.equal(param.detach(), before[name]) == frozen, name


def test_over_confident_discriminator_raises_p(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")

    def confident(g: dict[str, Any], d: dict[str, Any]) -> tuple[Generator, Discriminator]:
        G, D = tiny_factory(g, d)
        with torch.no_grad():
            D.b4.out.bias.fill_(50.0)  # D(x) > 0 for every image: r_t = 1
        return G, D

    result = train(options(data, tmp_path / "run", kimg=0.032, p=0.0), confident)
    assert result.trainer.ada.last_rt == 1.0
    assert result.trainer.ada.p == pytest.approx(2 * 16 / 500_000)  # two adjustments of 4 batches of 4


def test_fine_tune_from_snapshot_weights(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")
    base = train(options(data, tmp_path / "base", kimg=0.008), tiny_factory)
    G_ema, _, meta = snapshot_generator(base.snapshot, tiny_factory)
    tuned = train(
        options(
            data, tmp_path / "tuned", kimg=0.008, resume=str(base.snapshot), weights_only=True, freeze_d=1
        ),
        tiny_factory,
    )
    assert tuned.nimg == 8  # a new schedule, counted from zero
    assert tuned.trainer.ada.ada_kimg == 100.0  # faster ADA when fine-tuning
    start = dict(G_ema.named_parameters())
    assert any(not torch.equal(p, start[n]) for n, p in tuned.trainer.G.named_parameters())
    assert meta["nimg"] == 8


def test_damaged_snapshot_is_detected(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")
    result = train(options(data, tmp_path / "run", kimg=0.004), tiny_factory)
    raw = bytearray(result.snapshot.read_bytes())
    raw[-10] ^= 0xFF  # flip bits inside the last tensor
    result.snapshot.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_snapshot(result.snapshot)
    result.snapshot.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CheckpointError, match="damaged"):
        train(options(data, tmp_path / "run", kimg=0.008), tiny_factory)


def test_keeps_the_last_snapshots(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")
    train(options(data, tmp_path / "run", kimg=0.016, tick_kimg=0.004, keep=2), tiny_factory)
    assert [p.name for p in list_snapshots(tmp_path / "run")] == [
        "snapshot-000000012.safetensors",
        "snapshot-000000016.safetensors",
    ]


def test_bad_data_is_reported(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", n=3)
    Image.new("RGB", (8, 6)).save(data / "odd.png")
    with pytest.raises(InputError, match="odd.png"):
        train(options(data, tmp_path / "run"), tiny_factory)
    with pytest.raises(InputError, match="does not exist"):
        train(options(tmp_path / "missing", tmp_path / "run"), tiny_factory)


def test_snapshot_is_a_generator_checkpoint_and_exports_an_asset(tmp_path: Path) -> None:
    from stylesurv.gan.checkpoint import load_generator
    from stylesurv.gan.train import export_asset

    data = write_images(tmp_path / "data")
    run = train(options(data, tmp_path / "run", kimg=0.008), tiny_factory)
    z = torch.from_numpy(np.random.RandomState(0).randn(2, 8)).float()
    expected = run.trainer.G_ema(z, None)
    assert torch.allclose(load_generator(run.snapshot)(z, None), expected, atol=1e-6)
    paths = export_asset(run.snapshot, tmp_path / "asset" / "base", grid=tmp_path / "grid.png")
    assert [p.name for p in paths] == ["base.safetensors", "base.json", "grid.png"]
    card = json.loads(paths[1].read_text())
    assert card["kimg"] == 0.008 and card["dtype"] == "float16" and card["options"]["seed"] == 3
    assert torch.allclose(load_generator(paths[0])(z, None), expected, atol=2e-2)  # float16 weights
    tuned = train(options(data, tmp_path / "tuned", kimg=0.004, resume=str(paths[0]), freeze_d=2))
    assert tuned.nimg == 4 and (tmp_path / "tuned" / "grids" / "fakes-000000004.png").is_file()


def test_wall_time_snapshots_happen_between_ticks(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")
    # ticks of 1 kimg never end in this run; --snap-minutes 0 snapshots after every minibatch instead
    train(
        options(data, tmp_path / "run", kimg=0.012, tick_kimg=1.0, snap=1000, snap_minutes=0.0), tiny_factory
    )
    assert [p.name for p in list_snapshots(tmp_path / "run")] == [
        "snapshot-000000004.safetensors",
        "snapshot-000000008.safetensors",
        "snapshot-000000012.safetensors",
    ]


def test_sigterm_snapshots_and_stops_cleanly(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data")
    calls = [0]

    def terminated_soon(g: dict[str, Any], d: dict[str, Any]) -> tuple[Generator, Discriminator]:
        G, D = tiny_factory(g, d)

        def hook(*_: Any) -> None:
            calls[0] += 1
            if calls[0] == 5:  # during the second minibatch
                os.kill(os.getpid(), signal.SIGTERM)

        D.register_forward_hook(hook)
        return G, D

    previous = signal.getsignal(signal.SIGTERM)
    result = train(options(data, tmp_path / "run", kimg=1.0), terminated_soon)
    assert result.nimg == 8 and result.snapshot.name == "snapshot-000000008.safetensors"
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is uninstalled afterwards
    assert train(options(data, tmp_path / "run", kimg=0.012), tiny_factory).nimg == 12  # and it continues


def test_fine_tuning_twice_gives_the_same_weights(tmp_path: Path) -> None:
    # Noise inputs and augmentation draw from the global generators: a new run must seed them itself,
    # whatever ran before it in the process.
    data = write_images(tmp_path / "data")
    base = train(options(data, tmp_path / "base", kimg=0.008), tiny_factory)
    runs = []
    for name in ("a", "b"):
        torch.randn(17)  # disturb the global generator between the runs
        runs.append(
            train(
                options(
                    data, tmp_path / name, kimg=0.008, resume=str(base.snapshot), weights_only=True, p=0.5
                ),
                tiny_factory,
            )
        )
    first, second = (dict(r.trainer.G.named_parameters()) for r in runs)
    assert all(torch.equal(first[name], second[name]) for name in first)
