"""Run folders: atomic writes, content hashes, stage caching and the run's manifest.json.

A stage is a pure function of its inputs and config.  Its key is the hash of both; the stage writes into a
stage folder with atomic writes and is marked done only when it returns, so a run killed half-way leaves no
half-written file, downstream stages never see an unfinished stage, and the next run resumes that stage.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylesurv.core.atomic import write_json_atomic
from stylesurv.core.console import info
from stylesurv.core.hashing import hash_config, hash_tree, package_versions

MANIFEST = "manifest.json"
STAGES_DIR = ".stages"  # RUN/.stages/<stage>.done.json and .pending.json: the stage bookkeeping


# --------------------------------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class StageResult:
    """Where a stage's output lives and whether this call computed it or found it cached."""

    name: str
    path: Path
    key: str
    cached: bool
    seconds: float


class RunDir:
    """A run folder: one sub-folder per stage, each guarded by a key of inputs and config, and a manifest."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def stage_path(self, name: str) -> Path:
        return self.root / name

    def _marker(self, name: str, kind: str) -> Path:
        return self.root / STAGES_DIR / f"{name.replace('/', '__')}.{kind}.json"

    def stage_key(self, name: str) -> str | None:
        """The key a finished stage was computed with, or None when the stage is absent or incomplete."""
        marker = self._marker(name, "done")
        if not marker.is_file() or not self.stage_path(name).is_dir():
            return None
        try:
            return json.loads(marker.read_text())["key"]
        except (ValueError, KeyError):
            return None

    def run_stage(
        self,
        name: str,
        config: Mapping[str, Any],
        inputs: Mapping[str, str | os.PathLike[str]],
        build: Callable[[Path], None],
    ) -> StageResult:
        """Run ``build(stage_dir)`` unless the stage already holds output for the same inputs and config.

        ``inputs`` maps a label to a file or folder whose content enters the key.  ``build`` writes its
        files atomically into the stage folder and may resume from what an interrupted run left there: a
        folder started with the same key is handed back as it is, one with another key is emptied first.
        The stage counts as done only once its marker is written, after ``build`` returns.
        """
        input_hashes = {label: hash_tree(p) for label, p in sorted(inputs.items())}
        key = hash_config({"stage": name, "config": dict(config), "inputs": input_hashes})
        path = self.stage_path(name)
        if self.stage_key(name) == key:
            info(f"[green]✓[/green] {name}: up to date, skipped")
            self._record(name, key, config, input_hashes, cached=True, seconds=0.0)
            return StageResult(name, path, key, cached=True, seconds=0.0)
        pending, done = self._marker(name, "pending"), self._marker(name, "done")
        started_with = json.loads(pending.read_text()).get("key") if pending.is_file() else None
        done.unlink(missing_ok=True)
        if path.exists() and started_with != key:
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(pending, {"key": key})
        start = time.perf_counter()
        build(path)
        seconds = time.perf_counter() - start
        write_json_atomic(done, {"key": key, "config": dict(config), "inputs": input_hashes})
        pending.unlink()
        self._record(name, key, config, input_hashes, cached=False, seconds=seconds)
        return StageResult(name, path, key, cached=False, seconds=seconds)

    # manifest ---------------------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        return json.loads(path.read_text()) if path.is_file() else {}

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into manifest.json (versions are always refreshed) and write it atomically."""
        manifest = self.read_manifest()
        manifest.update(fields)
        manifest["versions"] = package_versions()
        manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json_atomic(self.root / MANIFEST, manifest)
        return manifest

    def _record(
        self,
        name: str,
        key: str,
        config: Mapping[str, Any],
        inputs: dict[str, str],
        cached: bool,
        seconds: float,
    ) -> None:
        stages = self.read_manifest().get("stages", {})
        stages[name] = {"key": key, "config": dict(config), "inputs": inputs, "cached": cached}
        stages[name]["seconds"] = seconds
        self.update_manifest(stages=stages)
