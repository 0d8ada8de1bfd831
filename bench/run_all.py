"""Run every stage's benchmark in one process and print one table of throughputs and ratios.

Each bench/bench_<area>.py defines ``main(argv) -> list[dict]`` (rows of named measurements, measured side
by side within that benchmark).  Usage: ``make bench`` or
``python bench/run_all.py [--json-dir DIR] [AREA ...]``; the rows are also written to runs/bench.json.
``--json-dir DIR`` has every bench write its JSON record (``--json DIR/<area>.json``, bench/benchjson.py);
``--json-dir bench/results`` and then ``python bench/write_results.py`` update docs/results.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(areas: list[str], json_dir: Path | None = None) -> int:
    console = Console()
    rows: list[tuple[str, dict]] = []
    failed = []
    for path in sorted(HERE.glob("bench_*.py")):
        area = path.stem.removeprefix("bench_")
        if areas and area not in areas:
            continue
        console.rule(area)
        start = time.perf_counter()
        try:
            bench = _load(path).main
            argv = [] if json_dir is None else ["--json", str(json_dir / f"{area}.json")]
            results = bench(argv) if "argv" in inspect.signature(bench).parameters else bench()
            rows.extend((area, row) for row in results or [])
        except Exception:  # a failing benchmark is reported; the others still run
            traceback.print_exc()
            failed.append(area)
        rows.append((area, {"benchmark wall time s": time.perf_counter() - start}))
    table = Table(title="stylesurv benchmarks (one run, this machine)", show_lines=False)
    table.add_column("area")
    table.add_column("measurement")
    for area, row in rows:
        table.add_row(area, "  ".join(f"{key}={_format(value)}" for key, value in row.items()))
    console.print(table)
    out = HERE.parent / "runs" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps([{"area": a, **r} for a, r in rows], indent=2, default=str))
    if failed:
        console.print(f"[red]failed:[/red] {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("areas", nargs="*", help="areas to run (bench_<area>.py; default: all)")
    parser.add_argument("--json-dir", type=Path, default=None, help="write each bench's JSON record here")
    args = parser.parse_args()
    sys.exit(main(args.areas, args.json_dir))
