"""Training speed (sec/kimg) of the shipped 64 px configuration and the 256 px FFHQ configuration.

Each configuration runs a few minibatches of the real training step (G main, D main, lazy path-length and
R1, EMA, ADA) on random images.  The cost of the lazy regularisers is measured on their own minibatches and
amortised over their intervals (path length every 4, R1 every 16), so a few steps give the steady-state
sec/kimg that a long run sees.  Reference (ANCHORS.md, NVIDIA's code on a 2-core CPU like this one, fp32,
batch 16): 27 kimg/h = 133 s/kimg for the 64 px configuration, 0.71 kimg/h = 5070 s/kimg at 256 px (batch 4).
On a GPU (``--device cuda``) the reference is the published one-V100 figure at 256 px, 21.6 s/kimg (NVIDIA's
mixed precision and custom CUDA kernels; ours runs fp32 with TF32 convolutions), and larger batches are timed.
Run: .venv/bin/python bench/bench_gan_train.py [--device cuda] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchjson import add_json_option, write_json
from PIL import Image

from stylesurv.gan import dist
from stylesurv.gan.dataset import ImageDataset
from stylesurv.gan.presets import PRESETS
from stylesurv.gan.train import TrainConfig, Trainer, default_factory

REFERENCE_SEC_PER_KIMG = {"synth64": 3600 / 27, "paper256": 3600 / 0.71}
GPU_REFERENCE_SEC_PER_KIMG = {"paper256": 21.6}  # stylegan2-ada-pytorch README, one V100


def _images(folder: Path, side: int, n: int = 16) -> Path:
    rng = np.random.RandomState(0)
    for i in range(n):
        Image.fromarray(rng.randint(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_step(trainer: Trainer, index: int) -> float:
    trainer.step_index = index  # 0: path length + R1, 4: path length only, 1: neither
    device = trainer.world.device
    _sync(device)
    start = time.perf_counter()
    trainer.step()
    _sync(device)
    return time.perf_counter() - start


def measure(cfg: str, batch: int, repeats: int = 2, device: str = "cpu") -> dict:
    """sec/kimg of one configuration: main step + path length / 4 + R1 / 16, per image."""
    config = PRESETS[cfg].replace(batch=batch, mbstd_group=min(batch, PRESETS[cfg].mbstd_group))
    with tempfile.TemporaryDirectory() as tmp:
        dataset = ImageDataset(_images(Path(tmp), config.resolution))
        options = TrainConfig(data=tmp, out=tmp, cfg=cfg, batch=batch, aug="ada", p=0.2)
        torch.manual_seed(0)
        G, D = default_factory(config.generator_kwargs(), config.discriminator_kwargs())
        trainer = Trainer(G, D, config, options, dataset, world=dist.World(device=torch.device(device)))
        _timed_step(trainer, 1)  # warm-up
        _timed_step(trainer, 0)
        main = min(_timed_step(trainer, 1) for _ in range(repeats))
        with_pl = min(_timed_step(trainer, 4) for _ in range(repeats))
        with_both = _timed_step(trainer, 0)
    pl, r1 = max(with_pl - main, 0.0), max(with_both - with_pl, 0.0)
    per_batch = main + pl / config.pl_interval + r1 / config.r1_interval
    sec_per_kimg = per_batch / batch * 1000
    table = REFERENCE_SEC_PER_KIMG if device == "cpu" else GPU_REFERENCE_SEC_PER_KIMG
    reference = table.get(cfg, float("nan"))
    g_params = sum(p.numel() for p in G.parameters())
    d_params = sum(p.numel() for p in D.parameters())
    return {
        "config": cfg,
        "batch": batch,
        "G_params_M": round(g_params / 1e6, 2),
        "D_params_M": round(d_params / 1e6, 2),
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "main_s": round(main, 3),
        "pl_s": round(pl, 3),
        "r1_s": round(r1, 3),
        "sec_per_kimg": round(sec_per_kimg, 1),
        "kimg_per_h": round(3600 / sec_per_kimg, 2),
        "reference_sec_per_kimg": round(reference, 1),
        "speedup_vs_reference": round(reference / sec_per_kimg, 2),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (2 threads) or cuda")
    parser.add_argument("--quick", action="store_true", help="skip the 256 px configuration")
    add_json_option(parser)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.device == "cpu":
        torch.set_num_threads(2)
        plan = [("synth64", 32, 2), ("synth64", 16, 2)] + ([] if args.quick else [("paper256", 4, 1)])
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        plan = [("synth64", 32, 3), ("synth64", 64, 3)] + ([] if args.quick else [("paper256", 16, 2)])
    rows = [measure(cfg, batch, repeats, args.device) for cfg, batch, repeats in plan]
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[k]) for k in keys))
    # flat JSON results: <config>_batch<B>.<measure> (device and threads are measures too)
    found = {f"{row['config']}_batch{row['batch']}.{k}": v for row in rows for k, v in row.items()}
    found = {k: v for k, v in found.items() if k.rsplit(".", 1)[1] not in ("config", "batch")}
    write_json(args.json, "gan_train", found, argv)
    return rows


if __name__ == "__main__":
    main()
