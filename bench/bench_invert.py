"""Inversion: a reference-style projector against our default (encoder + batched W+ refinement), side by side.

Both project the same held-out portraits with the same generator and the same loss (multi-scale pixel MSE +
SSIM; the reference's LPIPS-VGG16 needs weights that we never download):

- (a) reference-style: one image at a time, W space, from ``w_avg``, 1000 Adam steps (NVIDIA's schedule);
- (b) ours: encoder initialisation, then ``--steps`` batched refinement steps in W+ for all images at once;
- (c), (d): the same batched refinement in W, and in W+ from ``w_avg`` without the encoder (W vs W+, and
  what the encoder buys).

Without ``--generator`` (and ``--aligned`` photos) the generator is randomly initialised (the 32 px
configuration of ANCHORS.md) and the held-out portraits are its own samples with truncation 0.7 and style
mixing, so they are reachable in W+ but not exactly in W, as real photos are not.  The encoder is trained
first on other samples (its training time is a one-off and reported apart).  ``--reference-images K`` runs
(a) on the first K images only, to fit the CPU budget: (a)'s images/s then comes from those K and its PSNR
is compared with (b) on the same K.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from stylesurv.gan.networks import Generator
from stylesurv.invert.encoder import EncoderTrainConfig, train_encoder
from stylesurv.invert.losses import LossWeights, ReconstructionLoss
from stylesurv.invert.metrics import reconstruction_metrics
from stylesurv.invert.project import ProjectConfig, project, w_std_estimate

RANDOM_G = dict(
    z_dim=128, c_dim=0, w_dim=128, img_resolution=32, img_channels=3,
    mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=2048, channel_max=128),
)  # fmt: skip


def held_out_images(G: torch.nn.Module, n: int, seed: int = 10_000) -> torch.Tensor:
    """``n`` samples (truncation 0.7, every other one style-mixed at a random layer) from unused seeds."""
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(2, n, G.z_dim, generator=rng).to(G.mapping.w_avg)
        ws, mix = G.mapping(z[0], None, truncation_psi=0.7), G.mapping(z[1], None, truncation_psi=0.7)
        cut = torch.randint(1, G.num_ws, (n,), generator=rng)
        for i in range(0, n, 2):
            ws[i, int(cut[i]) :] = mix[i, int(cut[i]) :]
        return G.synthesis(ws, noise_mode="const")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_batched(G, images, encoder, space: str, steps: int, w_std: float) -> tuple[float, torch.Tensor]:
    """Seconds and per-image PSNR of one batched projection of all ``images``."""
    device = images.device
    _sync(device)
    start = time.perf_counter()
    loss = ReconstructionLoss(LossWeights())
    loss.set_target(images)
    init = None
    if encoder is not None:
        with torch.no_grad():
            w, ws = encoder(images)
        init = w if space == "w" else ws
    seeds = list(range(len(images)))
    result = project(G, loss, len(images), seeds, ProjectConfig(space=space, steps=steps), init, w_std)
    _sync(device)
    seconds = time.perf_counter() - start
    return seconds, torch.from_numpy(reconstruction_metrics(images, result.images)["psnr"])


def run_reference(G, images, steps: int, w_std: float) -> tuple[float, torch.Tensor]:
    """Seconds and per-image PSNR of the one-image-at-a-time W projector."""
    device = images.device
    psnr = []
    _sync(device)
    start = time.perf_counter()
    for i in range(len(images)):
        loss = ReconstructionLoss(LossWeights())
        loss.set_target(images[i : i + 1])
        result = project(G, loss, 1, [i], ProjectConfig(space="w", steps=steps), None, w_std)
        psnr.append(float(reconstruction_metrics(images[i : i + 1], result.images)["psnr"][0]))
    _sync(device)
    return time.perf_counter() - start, torch.tensor(psnr, dtype=torch.float64)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--reference-images", type=int, default=2, help="images (a) projects (<= --images)")
    parser.add_argument("--reference-steps", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100, help="refinement steps of (b), (c), (d)")
    parser.add_argument("--encoder-steps", type=int, default=200)
    parser.add_argument("--generator", help="generator checkpoint (default: a random 32 px generator)")
    parser.add_argument("--aligned", help="aligned folder whose first --images photos are the held-out set")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv or [])
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    if args.generator:
        from stylesurv.gan.checkpoint import load_generator

        G = load_generator(args.generator).to(device).eval()
        print(f"generator: {args.generator}")
    else:
        torch.manual_seed(0)
        G = Generator(**RANDOM_G).to(device).eval()
        print("generator: randomly initialised (no trained one given), 32 px")
    print(f"generator: {sum(p.numel() for p in G.parameters()) / 1e6:.2f} M parameters, num_ws {G.num_ws}")
    w_std = w_std_estimate(G)
    start = time.perf_counter()
    encoder = train_encoder(G, EncoderTrainConfig(steps=args.encoder_steps, batch=16, seed=1))
    print(f"encoder: {args.encoder_steps} steps x 16 images trained in {time.perf_counter() - start:.1f} s")
    if args.aligned:
        from pathlib import Path

        from stylesurv.invert.embed import load_batch, usable_patients

        pids = usable_patients(Path(args.aligned))[: args.images]
        images = load_batch(Path(args.aligned), pids, G.img_resolution, use_masks=False)[0].to(device)
        args.images = len(images)
    else:
        images = held_out_images(G, args.images)
    k = min(args.reference_images, args.images)

    rows = []
    seconds, psnr = run_reference(G, images[:k], args.reference_steps, w_std)
    rows.append({"method": f"(a) reference: W, 1 at a time, {args.reference_steps} steps", "images": k,
                 "images_per_s": k / seconds, "psnr": float(psnr.mean()),
                 "psnr_same_k": float(psnr.mean())})  # fmt: skip
    variants = [
        ("(b) ours: encoder + batched W+", encoder, "wplus"),
        ("(c) encoder + batched W", encoder, "w"),
        ("(d) w_avg + batched W+ (no encoder)", None, "wplus"),
    ]
    for name, enc, space in variants:
        seconds, psnr = run_batched(G, images, enc, space, args.steps, w_std)
        rows.append({"method": f"{name}, {args.steps} steps", "images": args.images,
                     "images_per_s": args.images / seconds, "psnr": float(psnr.mean()),
                     "psnr_same_k": float(psnr[:k].mean())})  # fmt: skip
    seconds, psnr = run_batched(G, images, encoder, "wplus", 0, w_std)
    rows.append({"method": "(e) encoder only, W+", "images": args.images,
                 "images_per_s": args.images / seconds, "psnr": float(psnr.mean()),
                 "psnr_same_k": float(psnr[:k].mean())})  # fmt: skip

    print(f"\ndevice {device}, {args.threads} threads; PSNR in dB; 'same k' = the {k} images (a) projected")
    print(f"{'method':<50} {'images':>6} {'img/s':>9} {'PSNR':>7} {'PSNR same k':>12}")
    for row in rows:
        print(f"{row['method']:<50} {row['images']:>6} {row['images_per_s']:>9.3f} {row['psnr']:>7.2f}"
              f" {row['psnr_same_k']:>12.2f}")  # fmt: skip
    ref, ours = rows[0], rows[1]
    speedup = ours["images_per_s"] / ref["images_per_s"]
    psnr_gap = ours["psnr_same_k"] - ref["psnr_same_k"]
    print(f"\n(b)/(a) throughput: {speedup:.1f}x (target >= 20x); "
          f"PSNR (b) - (a) on the same {k} images: {psnr_gap:+.2f} dB (target >= -0.5 dB)")  # fmt: skip
    results = []
    for row in rows:
        method = row["method"]
        results.append({"bench": "invert", "metric": f"{method}: images/s", "value": row["images_per_s"],
                        "unit": "img/s"})  # fmt: skip
        results.append({"bench": "invert", "metric": f"{method}: PSNR", "value": row["psnr"],
                        "unit": "dB"})  # fmt: skip
    results.append({"bench": "invert", "metric": "(b)/(a) throughput", "value": speedup,
                    "unit": "x", "note": "target >= 20"})  # fmt: skip
    results.append({"bench": "invert", "metric": "PSNR (b) - (a), same images", "value": psnr_gap,
                    "unit": "dB", "note": "target >= -0.5"})  # fmt: skip
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
