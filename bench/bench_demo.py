"""The demo's wall time per stage and its peak memory, run as a fresh process like `make demo` does.

Budget (issue 9): at most 5 minutes of wall time and 4 GB of peak memory on 2 CPU cores.
Run: .venv/bin/python bench/bench_demo.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchjson import add_json_option, slug, write_json


def results(rows: list[dict]) -> dict:
    """Flat JSON results: ``stage_<name>.seconds``, ``demo_total.seconds``, ``peak_memory.mb``,
    ``model_<name>.harrell_c`` / ``.oof_harrell_c`` (fold mean / pooled out of fold), ``oracle.*_c``."""
    out: dict = {}
    for row in rows:
        if row.get("stage") == "demo total (fresh process)":
            out["demo_total.seconds"], out["demo_total.budget_s"] = row["seconds"], row["budget_s"]
        elif row.get("stage") == "demo peak memory":
            out["peak_memory.mb"], out["peak_memory.budget_mb"] = row["MB"], row["budget_MB"]
        elif "stage" in row:
            out[f"stage_{slug(row['stage'])}.seconds"] = row["seconds"]
        elif row["model"] == "oracle":
            out["oracle.face_only_c"], out["oracle.face_clinical_c"] = row["face_only"], row["face_clinical"]
        else:
            out[f"model_{row['model']}.harrell_c"] = row["harrell_c"]
            out[f"model_{row['model']}.oof_harrell_c"] = row["oof_c"]
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser)
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="stylesurv-demo-bench-"))
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stylesurv", "-q", "demo", "--out", str(out)], check=True)
        wall = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        manifest = json.loads((out / "run" / "manifest.json").read_text())
        rows = [{"stage": name, "seconds": seconds} for name, seconds in manifest["stage_seconds"].items()]
        rows.append({"stage": "demo total (fresh process)", "seconds": wall, "budget_s": 300})
        rows.append({"stage": "demo peak memory", "MB": peak_mb, "budget_MB": 4096})
        for model, metrics in manifest["metrics"].items():
            rows.append(
                {"model": model, "harrell_c": metrics["harrell_c"], "oof_c": metrics["oof_harrell_c"]}
            )
        oracle = json.loads((out / "cohort" / "oracle.json").read_text())
        rows.append(
            {"model": "oracle", "face_only": oracle["face_only"], "face_clinical": oracle["face_clinical"]}
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    for row in rows:
        print(row)
    write_json(args.json, "demo", results(rows), argv)
    return rows


if __name__ == "__main__":
    main()
