"""Inversion: a reference-style projector against our default (encoder + batched W+ refinement), side by side.

Both project the same held-out portraits with the same generator and the same loss (multi-scale pixel MSE +
SSIM, weighted by the face mask as ``stylesurv embed`` does by default; the reference's LPIPS-VGG16 needs
weights that we never download):

- (a) reference-style: one image at a time, W space, from ``w_avg``, ``--reference-steps`` (1000) Adam steps
  (NVIDIA's schedule);
- (b) ours: encoder initialisation, then ``--steps`` batched refinement steps in W+ for all images at once;
- (c), (d): the same batched refinement in W, and in W+ from ``w_avg`` without the encoder (W vs W+, and
  what the encoder buys); (e): the encoder alone.

By default the generator and encoder are the shipped base ones (``src/stylesurv/assets/``) and the held-out
portraits are ``--images`` (32) subjects of the synthetic population drawn with ``--seed`` 999 (the base
generator was trained on seed 123): rendered at the generator's resolution as unaligned photos with their
true landmarks, aligned with the project's aligner (with face masks), in ``--work`` or a temporary folder.
``--generator``, ``--encoder`` and ``--aligned`` (an aligned folder whose first ``--images`` photos are the
held-out set) override these; a ``--generator`` without ``--encoder`` gets an encoder trained here for
``--encoder-steps``.  ``--random-generator`` is the old self-contained mode: a randomly initialised 32 px
generator (ANCHORS.md) whose own samples (truncation 0.7, style mixing) are the portraits, and an encoder
trained on other samples.

(a) costs about a minute per image on a CPU core, so it runs on the first ``--reference-images`` K images only
(default 5, which keeps the whole bench near 10 minutes on 2 CPU cores): (a)'s images/s comes from those K,
and the PSNR comparison of (a) with (b) is on those same K images; (b)'s PSNR over all images is shown too.
``--json PATH`` also writes the numbers as JSON (bench/benchjson.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchjson import add_json_option, write_json

from stylesurv.gan.networks import Generator
from stylesurv.invert.encoder import EncoderTrainConfig, check_encoder_matches, load_encoder, train_encoder
from stylesurv.invert.losses import LossWeights, ReconstructionLoss
from stylesurv.invert.metrics import reconstruction_metrics
from stylesurv.invert.project import ProjectConfig, project, w_std_estimate

RANDOM_G = dict(
    z_dim=128, c_dim=0, w_dim=128, img_resolution=32, img_channels=3,
    mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=2048, channel_max=128),
)  # fmt: skip
# JSON keys of the rows (a) to (e), in order
METHOD_KEYS = (
    "a_reference_w_one_at_a_time",
    "b_encoder_batched_wplus",
    "c_encoder_batched_w",
    "d_w_avg_batched_wplus",
    "e_encoder_only_wplus",
)
HELD_OUT_SEED = 999  # the base generator was trained on the population of seed 123 (n 20000)


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


def held_out_portraits(work: Path, n: int, seed: int, resolution: int) -> Path:
    """Render ``n`` population subjects (unaligned, true landmarks) and align them: the aligned folder.

    Both steps reuse what ``work`` already holds for the same settings.
    """
    from stylesurv.cohort.synthetic import make_world, write_world
    from stylesurv.faces.folder import AlignConfig, align_cohort

    population, aligned = work / "population", work / "aligned"
    wanted = {"kind": "population", "n": n, "seed": seed, "resolution": resolution, "unaligned": True}
    done = population / "synth.json"
    if not (done.is_file() and all(json.loads(done.read_text()).get(k) == v for k, v in wanted.items())):
        write_world(make_world("population", n, seed), population, resolution=resolution, unaligned=True)
    options = AlignConfig(resolution=resolution)
    summary = align_cohort(population, aligned, options, population / "landmarks.csv", workers=1)
    if summary.usable < n:
        print(f"warning: only {summary.usable} of {n} portraits aligned usably ({summary.counts})")
    return aligned


def load_portraits(aligned: Path, n: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first ``n`` usable photos of an aligned folder in [-1, 1] and their face masks (None if absent)."""
    from stylesurv.invert.embed import load_batch, usable_patients

    pids = usable_patients(aligned)[:n]
    images, faces, _ = load_batch(aligned, pids, resolution, use_masks=True)
    return images, faces


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_batched(
    G, images, faces, encoder, space: str, steps: int, w_std: float
) -> tuple[float, torch.Tensor]:
    """Seconds and per-image PSNR of one batched projection of all ``images``."""
    device = images.device
    _sync(device)
    start = time.perf_counter()
    loss = ReconstructionLoss(LossWeights())
    loss.set_target(images, faces)
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


def run_reference(G, images, faces, steps: int, w_std: float) -> tuple[float, torch.Tensor]:
    """Seconds and per-image PSNR of the one-image-at-a-time W projector."""
    device = images.device
    psnr = []
    _sync(device)
    start = time.perf_counter()
    for i in range(len(images)):
        loss = ReconstructionLoss(LossWeights())
        loss.set_target(images[i : i + 1], None if faces is None else faces[i : i + 1])
        result = project(G, loss, 1, [i], ProjectConfig(space="w", steps=steps), None, w_std)
        psnr.append(float(reconstruction_metrics(images[i : i + 1], result.images)["psnr"][0]))
        elapsed = time.perf_counter() - start
        print(f"  (a) image {i + 1}/{len(images)}: {psnr[-1]:.2f} dB, {elapsed:.0f} s so far")
    _sync(device)
    return time.perf_counter() - start, torch.tensor(psnr, dtype=torch.float64)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", "--n", type=int, default=32, help="held-out portraits")
    parser.add_argument("--reference-images", type=int, default=5, help="images (a) projects (<= --images)")
    parser.add_argument("--reference-steps", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100, help="refinement steps of (b), (c), (d)")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="population seed of the portraits")
    parser.add_argument("--generator", help="generator checkpoint (default: the shipped base generator)")
    parser.add_argument("--encoder", help="encoder folder (default: the shipped one with the base generator)")
    parser.add_argument("--encoder-steps", type=int, default=200, help="training steps of a missing encoder")
    parser.add_argument("--aligned", help="aligned folder whose first --images photos are the held-out set")
    parser.add_argument("--work", help="folder for the rendered and aligned portraits (default: temporary)")
    parser.add_argument("--random-generator", action="store_true",
                        help="a random 32 px generator whose own samples are the portraits")  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.random_generator and args.generator:
        parser.error("--random-generator and --generator exclude each other")
    if args.images < 1 or args.reference_images < 1:
        parser.error("--images and --reference-images must be at least 1")
    return args


def networks(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The generator and encoder the bench compares on (see the module docstring)."""
    from stylesurv.app.pipeline import BASE_ENCODER, BASE_GENERATOR
    from stylesurv.gan.checkpoint import load_generator

    if args.random_generator:
        torch.manual_seed(0)
        G = Generator(**RANDOM_G).to(device).eval()
        print("generator: randomly initialised, 32 px")
    else:
        G = load_generator(args.generator or BASE_GENERATOR).to(device).eval()
        print(f"generator: {args.generator or BASE_GENERATOR}")
    print(f"generator: {sum(p.numel() for p in G.parameters()) / 1e6:.2f} M parameters, num_ws {G.num_ws}")
    encoder_dir = args.encoder or (None if args.random_generator or args.generator else BASE_ENCODER)
    if encoder_dir is not None:
        encoder = load_encoder(encoder_dir).to(device)
        check_encoder_matches(encoder, G, str(encoder_dir))
        print(f"encoder: {encoder_dir}")
        return G, encoder
    start = time.perf_counter()
    encoder = train_encoder(G, EncoderTrainConfig(steps=args.encoder_steps, batch=16, seed=1))
    print(f"encoder: {args.encoder_steps} steps x 16 images trained in {time.perf_counter() - start:.1f} s")
    return G, encoder.to(device).eval()


def portraits(args: argparse.Namespace, G: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The held-out images in [-1, 1] and their face masks (None where there are none)."""
    if args.aligned:
        print(f"portraits: the first {args.images} usable photos of {args.aligned}")
        return load_portraits(Path(args.aligned), args.images, G.img_resolution)
    if args.random_generator:
        print(f"portraits: {args.images} samples of the random generator (truncation 0.7, style mixing)")
        return held_out_images(G, args.images), None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_invert_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        aligned = held_out_portraits(work, args.images, args.seed, G.img_resolution)
        images, faces = load_portraits(aligned, args.images, G.img_resolution)
    print(f"portraits: {len(images)} population subjects (seed {args.seed}), rendered and aligned at "
          f"{G.img_resolution} px with masks in {time.perf_counter() - start:.1f} s")  # fmt: skip
    return images, faces


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv or [])
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    G, encoder = networks(args, device)
    w_std = w_std_estimate(G)
    images, faces = portraits(args, G)
    images = images.to(device)
    faces = None if faces is None else faces.to(device)
    n = len(images)
    k = min(args.reference_images, n)

    rows = []
    print(f"(a) runs on the first {k} of the {n} portraits, {args.reference_steps} steps each")
    seconds, psnr = run_reference(
        G, images[:k], None if faces is None else faces[:k], args.reference_steps, w_std
    )
    rows.append({"method": f"(a) reference: W, 1 at a time, {args.reference_steps} steps", "images": k,
                 "images_per_s": k / seconds, "psnr": float(psnr.mean()),
                 "psnr_same_k": float(psnr.mean())})  # fmt: skip
    variants = [
        ("(b) ours: encoder + batched W+", encoder, "wplus", args.steps),
        ("(c) encoder + batched W", encoder, "w", args.steps),
        ("(d) w_avg + batched W+ (no encoder)", None, "wplus", args.steps),
        ("(e) encoder only, W+", encoder, "wplus", 0),
    ]
    for name, enc, space, steps in variants:
        seconds, psnr = run_batched(G, images, faces, enc, space, steps, w_std)
        label = f"{name}, {steps} steps" if steps else name
        rows.append({"method": label, "images": n, "images_per_s": n / seconds, "psnr": float(psnr.mean()),
                     "psnr_same_k": float(psnr[:k].mean())})  # fmt: skip

    print(
        f"\ndevice {device}, {args.threads} threads; PSNR in dB over the whole image; "
        f"(a) ran on the first {k} of the {n} portraits: 'PSNR first k' compares every method on those {k}"
    )
    print(f"{'method':<50} {'images':>6} {'img/s':>9} {'PSNR all':>9} {'PSNR first k':>13}")
    for row in rows:
        psnr_all = f"{row['psnr']:>9.2f}" if row["images"] == n else f"{'-':>9}"
        print(f"{row['method']:<50} {row['images']:>6} {row['images_per_s']:>9.3f} {psnr_all}"
              f" {row['psnr_same_k']:>13.2f}")  # fmt: skip
    ref, ours = rows[0], rows[1]
    speedup = ours["images_per_s"] / ref["images_per_s"]
    psnr_gap = ours["psnr_same_k"] - ref["psnr_same_k"]
    print(
        f"\n(a) {ref['images_per_s']:.4f} img/s, (b) {ours['images_per_s']:.3f} img/s: "
        f"(b)/(a) throughput {speedup:.1f}x (target >= 20x)"
    )
    print(
        f"PSNR on the first {k} images: (a) {ref['psnr_same_k']:.2f} dB, (b) {ours['psnr_same_k']:.2f} dB, "
        f"(b) - (a) {psnr_gap:+.2f} dB (target >= -0.5 dB); (b) over all {n}: {ours['psnr']:.2f} dB"
    )
    print(f"W vs W+ after the encoder, all {n}: (c) W {rows[2]['psnr']:.2f} dB, (b) W+ {ours['psnr']:.2f} dB")
    results = []
    for row in rows:
        method = row["method"]
        results.append({"bench": "invert", "metric": f"{method}: images/s", "value": row["images_per_s"],
                        "unit": "img/s", "note": f"{row['images']} images"})  # fmt: skip
        results.append({"bench": "invert", "metric": f"{method}: PSNR", "value": row["psnr"],
                        "unit": "dB", "note": f"mean over {row['images']} images"})  # fmt: skip
    results.append({"bench": "invert", "metric": "(b)/(a) throughput", "value": speedup,
                    "unit": "x", "note": "target >= 20"})  # fmt: skip
    results.append({"bench": "invert", "metric": f"PSNR (a), first {k} images", "value": ref["psnr_same_k"],
                    "unit": "dB"})  # fmt: skip
    results.append({"bench": "invert", "metric": f"PSNR (b), first {k} images", "value": ours["psnr_same_k"],
                    "unit": "dB"})  # fmt: skip
    results.append({"bench": "invert", "metric": f"PSNR (b) - (a), first {k} images", "value": psnr_gap,
                    "unit": "dB", "note": "target >= -0.5"})  # fmt: skip
    # flat JSON results: <method>.images / .images_per_s / .psnr_db (all its images) / .psnr_db_first_k,
    # and summary.* (k, the step counts and the device are in the command and machine)
    found: dict = {}
    for key, row in zip(METHOD_KEYS, rows, strict=True):
        found[f"{key}.images"] = row["images"]
        found[f"{key}.images_per_s"] = row["images_per_s"]
        found[f"{key}.psnr_db"] = row["psnr"]
        found[f"{key}.psnr_db_first_k"] = row["psnr_same_k"]
    found["summary.reference_images_k"] = k
    found["summary.b_over_a_throughput"] = speedup
    found["summary.psnr_b_minus_a_first_k_db"] = psnr_gap
    found["summary.device"] = str(device)
    write_json(args.json, "invert", found, argv)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
