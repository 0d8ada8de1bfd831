"""StyleGAN2 generator throughput on CPU: our fast path vs the reference algorithm, measured side by side.

For each configuration (the three ANCHORS.md configs at 32/64 px, FFHQ-like 256 px and 1024 px) this
times G forward and forward+backward (images/s) for:
- `reference`: the literal reference algorithm (`impl="ref"` ops: zero-stuffing upfirdn2d, separate
  bias/gain/activation passes), contiguous memory, fused or non-fused modulated conv as named;
- `ours`: the default path on CPU (`impl="fast"`, non-fused modulated conv, channels-last activations);
- `ours bf16 autocast`: the same under `torch.autocast("cpu", torch.bfloat16)` (AVX-512 BF16; images
  differ from fp32 by up to ~0.1, so this is an opt-in for training, not the default).
Achieved GFLOP/s (convolution and matmul FLOPs counted by torch's FlopCounterMode; backward counted as
2x forward) is compared with the best 2048^3 fp32 matmul measured between configurations in the same
run. Repetitions are interleaved and the best is kept, because the machine is shared.
Run: `.venv/bin/python bench/bench_gan_forward.py [--quick] [--threads N] [--json PATH]`.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from benchjson import add_json_option, slug, write_json

from stylesurv.gan import ops
from stylesurv.gan.networks import Generator


@dataclass(frozen=True)
class Config:
    name: str
    res: int
    z_dim: int
    mapping_layers: int
    channel_base: int
    channel_max: int
    batch: int
    backward: bool = True


CONFIGS = (
    Config("anchor-64-small", 64, 128, 4, 4096, 128, 16),
    Config("anchor-64-wide", 64, 256, 4, 8192, 256, 16),
    Config("anchor-32", 32, 128, 2, 2048, 128, 16),
    Config("ffhq-256", 256, 512, 8, 16384, 512, 2),
    Config("ffhq-1024", 1024, 512, 8, 32768, 512, 1, backward=False),
)

# (label, ops impl, fused_modconv, channels_last, bf16 autocast)
VARIANTS = (
    ("reference fused", "ref", True, False, False),
    ("reference non-fused", "ref", False, False, False),
    ("ours", "fast", False, True, False),
    ("ours bf16 autocast", "fast", False, True, True),
)


def _best_time(fn: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(size: int = 2048, repeats: int = 3) -> float:
    """Single-precision matmul throughput of this CPU (size^3, best of `repeats`), in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    return 2 * size**3 / _best_time(lambda: a @ b, repeats) / 1e9


def _forward_flops(g: Generator, z: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        g(z, None, fused_modconv=False)
    return counter.get_total_flops()


def bench_config(cfg: Config, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    synthesis_kwargs = dict(channel_base=cfg.channel_base, channel_max=cfg.channel_max)
    mapping_kwargs = dict(num_layers=cfg.mapping_layers)
    g = Generator(cfg.z_dim, 0, cfg.z_dim, cfg.res, 3, mapping_kwargs, synthesis_kwargs)
    z = torch.randn(cfg.batch, cfg.z_dim)
    flops = _forward_flops(g, z)

    def forward(fused: bool, channels_last: bool) -> None:
        with torch.no_grad():
            g(z, None, fused_modconv=fused, channels_last=channels_last)

    def forward_backward(fused: bool, channels_last: bool) -> None:
        img = g(z, None, fused_modconv=fused, channels_last=channels_last, noise_mode="random")
        img.float().square().mean().backward()

    timings: dict[tuple[str, str], float] = {}
    passes = [("fwd", forward)] + ([("fwd+bwd", forward_backward)] if cfg.backward else [])
    for _ in range(repeats):  # interleave the variants so background load hits them alike
        for label, impl, fused, channels_last, bf16 in VARIANTS:
            with ops.default_impl(impl), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                for pass_name, fn in passes:
                    if pass_name == "fwd":
                        fn(fused, channels_last)  # warm-up (allocator, oneDNN primitive caches)
                    t = _best_time(functools.partial(fn, fused, channels_last), 1)
                    key = (label, pass_name)
                    timings[key] = min(timings.get(key, float("inf")), t)
    rows = []
    params = sum(p.numel() for p in g.parameters())
    for (label, pass_name), seconds in timings.items():
        pass_flops = flops if pass_name == "fwd" else 3 * flops  # backward ~ 2x forward
        rows.append(
            dict(
                config=cfg.name, res=cfg.res, batch=cfg.batch, params_m=round(params / 1e6, 2), variant=label,
                pass_=pass_name, img_per_s=cfg.batch / seconds, gflops=pass_flops / seconds / 1e9,
            )
        )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (best kept)")
    parser.add_argument("--quick", action="store_true", help="only the 32 px and 64 px anchor configs")
    add_json_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    peak = matmul_gflops()
    configs = [c for c in CONFIGS if c.res <= 64] if args.quick else list(CONFIGS)
    rows: list[dict] = []
    for cfg in configs:
        rows.extend(bench_config(cfg, args.repeats if cfg.res <= 256 else 1))
        peak = max(peak, matmul_gflops())  # re-measured between configs: the best is the machine's peak
    print(f"threads {args.threads}; fp32 matmul {peak:.1f} GFLOP/s")
    header = f"{'config':<16} {'pass':<8} {'variant':<20} {'img/s':>8} {'GFLOP/s':>8} {'% matmul':>9}"
    print(f"{header} {'vs ref':>7}")
    for row in rows:
        ref = max(
            r["img_per_s"]
            for r in rows
            if r["config"] == row["config"]
            and r["pass_"] == row["pass_"]
            and r["variant"].startswith("reference")
        )
        row["speedup_vs_best_reference"] = row["img_per_s"] / ref
        row["matmul_gflops"] = peak
        print(
            f"{row['config']:<16} {row['pass_']:<8} {row['variant']:<20} {row['img_per_s']:8.2f} "
            f"{row['gflops']:8.1f} {100 * row['gflops'] / peak:8.0f}% "
            f"{row['speedup_vs_best_reference']:6.2f}x"
        )
    write_json(args.json, "gan_forward", results(rows, peak), argv)
    return rows


def results(rows: list[dict], peak: float) -> dict:
    """Flat JSON results: ``<config>.<pass>.<variant>.img_per_s`` / ``.gflops`` / ``.share_of_matmul`` /
    ``.speedup_vs_best_reference``, ``<config>.model.params_m`` / ``.batch``, ``matmul.fp32_2048_gflops``."""
    out: dict = {"matmul.fp32_2048_gflops": peak}
    for row in rows:
        out.setdefault(f"{row['config']}.model.params_m", row["params_m"])
        out.setdefault(f"{row['config']}.model.batch", row["batch"])
    for row in rows:
        key = f"{row['config']}.{row['pass_']}.{slug(row['variant'])}"
        out[f"{key}.img_per_s"] = row["img_per_s"]
        out[f"{key}.gflops"] = row["gflops"]
        out[f"{key}.share_of_matmul"] = row["gflops"] / peak
        out[f"{key}.speedup_vs_best_reference"] = row["speedup_vs_best_reference"]
    return out


if __name__ == "__main__":
    main()
