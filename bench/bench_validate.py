"""Cohort validation speed: photos checked per second on 10,000 small photos, single thread vs thread pool.

The benchmark writes its own cohort (128 px photos, 90 % JPEG, 10 % PNG) in a temporary folder, then times
`validate_cohort` with 1, 2 and 4 checking threads against a plain full decode of every photo (`read_image`).
A second, small set of 12 MP camera-sized JPEGs shows what the 1/8-scale JPEG decode of the check saves.

Run: .venv/bin/python bench/bench_validate.py [N_PHOTOS] [--json PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from benchjson import add_json_option, write_json
from PIL import Image

from stylesurv.cohort.images import check_image, read_image
from stylesurv.cohort.table import validate_cohort
from stylesurv.core.console import set_verbosity

# stable JSON keys of the rows, in order (see bench/benchjson.py)
ROW_KEYS = (
    "validate_1_thread",
    "validate_2_threads",
    "validate_4_threads",
    "full_decode_1_thread",
    "jpeg_12mp_check_eighth_decode",
    "jpeg_12mp_full_decode",
)


def make_cohort(root: Path, n: int, size: int = 128, seed: int = 0) -> Path:
    """A valid cohort of `n` patients with `size` px photos (JPEG, every tenth a PNG)."""
    rng = np.random.default_rng(seed)
    photos = root / "photos"
    photos.mkdir(parents=True)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    lines = ["patient_id,time,event,age"]
    for i in range(n):
        pid = f"P{i:05d}"
        lines.append(f"{pid},{rng.uniform(10, 3000):.1f},{int(rng.random() < 0.4)},{rng.integers(30, 90)}")
        image = Image.fromarray(np.roll(base, i, axis=1))
        if i % 10:
            image.save(photos / f"{pid}.jpg", quality=90)
        else:
            image.save(photos / f"{pid}.png", compress_level=1)
    (root / "clinical.csv").write_text("\n".join(lines) + "\n")
    return root


def _time_each(function, paths: list[Path], label: str) -> dict:
    start = time.perf_counter()
    for path in paths:
        function(path)
    return {"method": label, "photos": len(paths), "seconds": time.perf_counter() - start}


def measure(n_photos: int = 10_000, n_large: int = 24) -> list[dict]:
    set_verbosity(0)  # no progress bars while timing
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        validate_cohort(make_cohort(Path(tmp) / "warmup", 20))  # imports (sksurv) and caches, not timed
        cohort = make_cohort(Path(tmp) / "cohort", n_photos)
        for workers in (1, 2, 4):
            start = time.perf_counter()
            report = validate_cohort(cohort, workers=workers)
            seconds = time.perf_counter() - start
            assert report.ok and report.n_photos_checked == n_photos, report.problems[:3]
            rows.append({"method": f"validate, {workers} thread(s)", "photos": n_photos, "seconds": seconds})
        paths = sorted((cohort / "photos").iterdir())
        rows.append(_time_each(read_image, paths, "full decode (read_image), 1 thread"))
        large = Path(tmp) / "large"
        large.mkdir()
        coarse = np.random.default_rng(1).integers(0, 256, (150, 200, 3), dtype=np.uint8)
        for i in range(n_large):  # smooth camera-like content, about 1 MB per file
            Image.fromarray(np.roll(coarse, i, axis=0)).resize((4000, 3000)).save(
                large / f"L{i}.jpg", quality=85
            )
        large_paths = sorted(large.iterdir())
        rows.append(_time_each(check_image, large_paths, "12 MP JPEG: check (1/8 decode)"))
        rows.append(_time_each(read_image, large_paths, "12 MP JPEG: full decode (read_image)"))
    for row in rows:
        row["photos_per_s"] = row["photos"] / row["seconds"]
    print(f"{'method':<38} {'photos':>7} {'seconds':>8} {'photos/s':>9} {'vs first row':>13}")
    for group in (rows[:4], rows[4:]):
        for row in group:
            row["ratio_vs_first_row"] = row["photos_per_s"] / group[0]["photos_per_s"]
            speed = f"{row['photos']:>7} {row['seconds']:>8.2f} {row['photos_per_s']:>9.1f}"
            print(f"{row['method']:<38} {speed} {row['ratio_vs_first_row']:>12.2f}x")
    set_verbosity(1)
    return rows


def results(rows: list[dict]) -> dict:
    """The rows as flat JSON results: ``<row>.photos``, ``.seconds``, ``.photos_per_s``, ``.speed_vs_...``."""
    out: dict = {}
    for index, (key, row) in enumerate(zip(ROW_KEYS, rows, strict=True)):
        out[f"{key}.photos"] = row["photos"]
        out[f"{key}.seconds"] = row["seconds"]
        out[f"{key}.photos_per_s"] = row["photos_per_s"]
        first = "validate_1_thread" if index < 4 else "jpeg_12mp_check_eighth_decode"
        out[f"{key}.speed_vs_{first}"] = row["ratio_vs_first_row"]
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n_photos", nargs="?", type=int, default=10_000, help="small photos (default 10000)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    rows = measure(args.n_photos)
    write_json(args.json, "validate", results(rows), argv)
    return rows


if __name__ == "__main__":
    main()
