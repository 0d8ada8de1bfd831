"""Synthetic portrait speed: portraits per second at 64 and 128 px, rendering alone and the whole `synth`.

Run: .venv/bin/python bench/bench_synth.py [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchjson import add_json_option, write_json

from stylesurv.cohort.render import render_aligned
from stylesurv.cohort.synthetic import make_world, write_world


def _render_rate(resolution: int, n: int, clock: Callable[[], float] = time.perf_counter) -> float:
    subjects = make_world("cohort", n, seed=0).truth.to_dict(orient="records")
    start = clock()
    for s in subjects:
        render_aligned(s, resolution)
    return n / (clock() - start)


def _synth_rate(resolution: int, n: int, workers: int, folder: Path) -> float:
    start = time.perf_counter()
    world = make_world("cohort", n, seed=0)
    write_world(world, folder / f"w{resolution}_{workers}", resolution=resolution, workers=workers)
    return n / (time.perf_counter() - start)


# JSON key of each resolution's four rows, in the order main() measures them
ROW_NAMES = ("render_1_process", "render_per_cpu_s", "synth_1_worker", "synth_all_cores")


def results(rows: list[dict]) -> dict:
    """Flat JSON results: ``<R>px.<what>_portraits_per_s`` (the core count is in the record's machine)."""
    return {
        f"{row['resolution']}px.{ROW_NAMES[index % 4]}_portraits_per_s": row["per_s"]
        for index, row in enumerate(rows)
    }


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure and print portraits/s: one process rendering, and the full synth (render, encode, write)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for resolution, n in ((64, 600), (128, 200)):
            rows.append(
                {"resolution": resolution, "what": "render, 1 process", "per_s": _render_rate(resolution, n)}
            )
            cpu_rate = _render_rate(resolution, n, time.process_time)  # robust to other jobs on the machine
            rows.append({"resolution": resolution, "what": "render, per CPU-s", "per_s": cpu_rate})
            for workers in (1, cores):
                rate = _synth_rate(resolution, n, workers, Path(tmp))
                rows.append({"resolution": resolution, "what": f"synth, {workers} workers", "per_s": rate})
    print(f"{'px':>4}  {'what':<20} {'portraits/s':>11}")
    for row in rows:
        print(f"{row['resolution']:>4}  {row['what']:<20} {row['per_s']:>11.1f}")
    write_json(args.json, "synth", results(rows), argv)
    return rows


if __name__ == "__main__":
    main()
