"""Face throughput on 1024 x 1024 photos at R = 256: detection (+ 68 landmarks) and alignment, measured apart.

Photos are scikit-image's astronaut portrait enlarged to 1024 px, rotated and shifted a little so no two
are alike.  Each stage runs in this process (1 core) and in a pool of 2 worker processes (2 cores) whose
models are loaded before the clock starts.
Run: .venv/bin/python bench/bench_faces.py [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from benchjson import add_json_option, write_json
from PIL import Image
from skimage import data

from stylesurv.faces.align import align_face
from stylesurv.faces.detect import detect_faces, load_models

SIDE = 1024
RESOLUTION = 256
N_PHOTOS = 8


def photos(n: int = N_PHOTOS) -> list[np.ndarray]:
    """``n`` 1024 x 1024 portraits: the astronaut enlarged, rotated by up to 10 degrees and shifted."""
    base = Image.fromarray(data.astronaut()).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        angle, dx, dy = rng.uniform(-10, 10), *rng.integers(-80, 80, size=2)
        moved = base.rotate(
            angle, Image.Resampling.BILINEAR, translate=(int(dx), int(dy)), fillcolor=(90, 90, 90)
        )
        out.append(np.asarray(moved))
    return out


def _rate(run, items: int) -> float:
    start = time.perf_counter()
    run()
    return items / (time.perf_counter() - start)


def measure(
    workers: int, images: list[np.ndarray], landmarks: list[np.ndarray], upsample: int, max_side: int
) -> dict[str, float]:
    """Photos per second for detection and for alignment with ``workers`` processes (1: this process).

    Alignment is measured only for the default detector settings (it does not depend on them).
    """
    with_align = (upsample, max_side) == (1, 640)
    detect = functools.partial(detect_faces, upsample=upsample, max_side=max_side)
    align = functools.partial(align_face, resolution=RESOLUTION)
    if workers == 1:
        load_models()
        detect(images[0])  # warm-up
        rates = {"detect": _rate(lambda: [detect(im) for im in images], len(images))}
        if with_align:
            pairs = list(zip(images, landmarks, strict=True))
            rates["align"] = _rate(lambda: [align(im, lm) for im, lm in pairs], len(images))
        return rates
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=load_models) as pool:
        list(pool.map(detect, images[:workers]))  # warm-up: every worker has started
        rates = {"detect": _rate(lambda: list(pool.map(detect, images)), len(images))}
        if with_align:
            rates["align"] = _rate(lambda: list(pool.map(align, images, landmarks)), len(images))
        return rates


def _row(metric: str, rate: float, workers: int, what: str) -> dict:
    note = f"{SIDE}px photos, R={RESOLUTION}, {workers} process(es): {what}"
    return {"bench": "faces", "metric": metric, "value": round(rate, 2), "unit": "photos/s", "note": note}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    args = parser.parse_args(argv)
    images = photos()
    landmarks = [detect_faces(im)[0].landmarks for im in images]
    rows = []
    # flat JSON results: hog_upsample_<u>_at_<side>px.<detect|align>_<1|2>_process(es)_photos_per_s
    found: dict = {}
    # (upsample, detection size): the default (1, 640), a faster (0, 640) and the unshrunk (1, 1024)
    for upsample, max_side in ((1, 640), (0, 640), (1, 1024)):
        for workers in (1, 2):
            rates = measure(workers, images, landmarks, upsample, max_side)
            processes = "1_process" if workers == 1 else f"{workers}_processes"
            for stage, rate in rates.items():
                found[f"hog_upsample_{upsample}_at_{max_side}px.{stage}_{processes}_photos_per_s"] = rate
            detect_note = f"dlib HOG upsample {upsample} at {max_side} px + 68 landmarks"
            rows.append(_row(f"detect ({workers} cores)", rates["detect"], workers, detect_note))
            if "align" in rates:
                rows.append(
                    _row(f"align ({workers} cores)", rates["align"], workers, "FFHQ warp + supersampling")
                )
    print(f"{'metric':<22} {'photos/s':>9}  note")
    for row in rows:
        print(f"{row['metric']:<22} {row['value']:>9.2f}  {row['note']}")
    write_json(args.json, "faces", found, argv)
    return rows


if __name__ == "__main__":
    main()
