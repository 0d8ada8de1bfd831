"""docs/results.md is what bench/write_results.py makes of the committed bench records."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _writer():
    spec = importlib.util.spec_from_file_location("write_results", ROOT / "bench" / "write_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_a_record_becomes_a_table_of_rows_and_columns(tmp_path):
    record = {
        "bench": "demo",
        "date": "2026-12-04",
        "machine": {"cpu": "X", "cpu_count": 2},
        "command": ["python", "bench/bench_demo.py"],
        "results": {"a.speed_per_s": 1.23456, "a.ok": True, "b.speed_per_s": None, "total_s": 3},
    }
    (tmp_path / "demo.json").write_text(json.dumps(record))
    (tmp_path / "earlier.md").write_text("# Recorded earlier\n\nhand-kept\n")
    text = _writer().render(tmp_path)
    assert "| row | speed_per_s | ok | value |" in text
    assert "| `a` | 1.235 | true |  |" in text
    assert "| `b` | – |  |  |" in text  # a missing measurement, and blanks where a row has no such column
    assert "| `total_s` |  |  | 3 |" in text
    assert text.index("## demo") < text.index("# Recorded earlier")


def test_the_committed_results_page_is_up_to_date():
    expected = _writer().render(ROOT / "bench" / "results")
    assert (ROOT / "docs" / "results.md").read_text() == expected, "run `make results` or write_results.py"
