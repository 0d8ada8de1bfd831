"""The demo's wall time per stage and its peak memory, run as a fresh process like `make demo` does.

Budget (issue 9): at most 5 minutes of wall time and 4 GB of peak memory on 2 CPU cores.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> list[dict]:
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
    return rows


if __name__ == "__main__":
    main()
