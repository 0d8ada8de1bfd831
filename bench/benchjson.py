"""The JSON record a bench writes with ``--json PATH``; bench/write_results.py renders docs/results.md.

A record is one JSON object::

    {"bench": "validate", "date": "2026-11-27", "machine": {...}, "command": ["python", "bench/...", ...],
     "results": {"validate_1_thread.photos_per_s": 812.3, ...}}

``results`` is flat. Its keys are stable across runs and machines (no counts or settings inside a key: those
are in ``command``), and name a row and a column: ``<row>.<column>``, the column naming the quantity and its
unit (``_s`` seconds, ``_per_s`` per second, ``_c`` a C-index, ``_db`` decibels, ``share``/``ratio``
unitless). Comments elsewhere cite a value as ``bench/results/<file>.json: <key>``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
from pathlib import Path


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """The ``--json PATH`` option every bench takes."""
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the measured numbers as JSON here"
    )


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """Platform, CPU and torch of this machine (and the GPU, when torch sees one)."""
    info: dict = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:  # pragma: no cover - every bench environment has torch
        info["torch"] = None
    return info


def _clean(value: object) -> object:
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy / torch scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record(bench: str, results: dict, argv: list[str] | None = None) -> dict:
    """The record of one bench run: name, date, machine, command line and the flat results."""
    script = f"bench/bench_{bench}.py"
    command = ["python", script, *(sys.argv[1:] if argv is None else argv)]
    return {
        "bench": bench,
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "command": command,
        "results": {str(key): _clean(value) for key, value in results.items()},
    }


def write_json(path: Path | str | None, bench: str, results: dict, argv: list[str] | None = None) -> None:
    """Write the record to ``path`` (nothing when it is None)."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record(bench, results, argv), indent=2) + "\n")
    print(f"wrote {path}")


def slug(text: str) -> str:
    """A key part from a label: lower case, runs of other characters as one underscore."""
    out = "".join(c if c.isalnum() else "_" for c in text.lower())
    return "_".join(part for part in out.split("_") if part)
