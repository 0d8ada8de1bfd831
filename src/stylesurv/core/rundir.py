"""Run folders: a ledger of stages, each cached by the hash of its inputs and config, and the manifest.

A stage is a pure function of its inputs and config; its key is the hash of both.  The run folder is a
ledger that never claims more than was computed:

- a stage builds into a work folder (``.stages/work/<stage>``) and its output replaces the previous one
  only once complete (``.stages/<stage>.swap.json`` makes the two renames recoverable), so an interrupted
  or failed rerun leaves the previous finished stage in place and consistent with the stages after it;
- a stage's record (``.stages/<stage>.done.json``, mirrored into ``manifest.json`` "stages") is written only
  when its output is in place: its config, its inputs' hashes and paths, the hash of its output and its
  time; reusing a stage re-hashes its output and redoes it, with a warning, when it changed;
- an interrupted build is resumed from its work folder when it restarts with the same key;
- one process at a time: :meth:`RunDir.locked` holds ``.stages/lock`` (core.lock).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylesurv.core.atomic import write_json_atomic
from stylesurv.core.console import info, warn
from stylesurv.core.errors import InputError
from stylesurv.core.hashing import hash_config, hash_tree, package_versions
from stylesurv.core.lock import folder_lock

MANIFEST = "manifest.json"
STAGES_DIR = ".stages"  # RUN/.stages/<stage>.{done,pending,swap}.json, work/, trash/, lock


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
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"{self.root} is a file, not a run folder; choose another --out")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.root}: cannot create the run folder ({exc.strerror})") from None
        for swap in sorted((self.root / STAGES_DIR).glob("*.swap.json")):  # a swap a kill interrupted
            self._finish_swap(swap.name.removesuffix(".swap.json").replace("__", "/"))

    def stage_path(self, name: str) -> Path:
        return self.root / name

    def _marker(self, name: str, kind: str) -> Path:
        return self.root / STAGES_DIR / f"{name.replace('/', '__')}.{kind}.json"

    def _work(self, name: str) -> Path:
        return self.root / STAGES_DIR / "work" / name.replace("/", "__")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run folder's lock: a second process gets an InputError naming the holder."""
        with folder_lock(self.root / STAGES_DIR / "lock", what="run folder " + str(self.root) + ":"):
            yield

    def stage_record(self, name: str) -> dict[str, Any] | None:
        """The record of the finished stage ``name`` (its key, config, inputs, output hash), or None."""
        self._finish_swap(name)
        marker = self._marker(name, "done")
        if not marker.is_file() or not self.stage_path(name).is_dir():
            return None
        try:
            record = json.loads(marker.read_text())
        except ValueError:
            return None
        return record if isinstance(record, dict) and isinstance(record.get("key"), str) else None

    def stage_key(self, name: str) -> str | None:
        """The key a finished stage was computed with, or None when the stage is absent or incomplete."""
        record = self.stage_record(name)
        return None if record is None else record["key"]

    def recorded_path(self, path: str | os.PathLike[str]) -> str:
        """How a record names a path: relative to the run folder when inside it, else absolute."""
        resolved = Path(path).resolve()
        try:
            return resolved.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(resolved)

    def resolve_recorded(self, recorded: str) -> Path:
        """The path a record names (see :meth:`recorded_path`)."""
        path = Path(recorded)
        return path if path.is_absolute() else self.root / path

    def run_stage(
        self,
        name: str,
        config: Mapping[str, Any],
        inputs: Mapping[str, str | os.PathLike[str]],
        build: Callable[[Path], None],
        incremental: bool = False,
    ) -> StageResult:
        """Run ``build(folder)`` unless the stage already holds intact output for the same inputs and config.

        ``inputs`` maps a label to a file or folder whose content enters the key.  ``build`` writes into a
        work folder, which replaces the stage's folder once it returns; a work folder started with the same
        key is handed back as it is (resume), one with another key is emptied first.  ``incremental``: a
        new work folder starts as a copy (hard links) of the previous output, for a stage that updates
        only what changed.
        """
        for label, p in inputs.items():
            if not Path(p).exists():
                raise InputError(f"{name}: its input {label} {p} is missing (moved or deleted?)")
        input_hashes = {label: hash_tree(p) for label, p in sorted(inputs.items())}
        key = hash_config({"stage": name, "config": dict(config), "inputs": input_hashes})
        path = self.stage_path(name)
        record = self.stage_record(name)
        if record is not None and record["key"] == key:
            if record.get("outputs") in (None, hash_tree(path)):
                info(f"[green]✓[/green] {name}: up to date, skipped")
                return StageResult(name, path, key, cached=True, seconds=0.0)
            warn(f"{name}: its output in {path} changed since it was made; computing it again")
        work, pending = self._work(name), self._marker(name, "pending")
        started_with = self._read_key(pending)
        if work.exists() and started_with != key:
            shutil.rmtree(work)
        if not work.exists():
            if incremental and record is not None:
                shutil.copytree(path, work, copy_function=os.link)
            work.mkdir(parents=True, exist_ok=True)
        write_json_atomic(pending, {"key": key})
        start = time.perf_counter()
        build(work)
        seconds = time.perf_counter() - start
        finished = {
            "key": key,
            "config": dict(config),
            "inputs": input_hashes,
            "paths": {label: self.recorded_path(p) for label, p in sorted(inputs.items())},
            "outputs": hash_tree(work),
            "seconds": seconds,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json_atomic(self._marker(name, "swap"), finished)  # complete: from here a swap is finished
        self._finish_swap(name)
        pending.unlink(missing_ok=True)
        return StageResult(name, path, key, cached=False, seconds=seconds)

    @staticmethod
    def _read_key(marker: Path) -> str | None:
        try:
            return json.loads(marker.read_text()).get("key")
        except (OSError, ValueError, AttributeError):
            return None

    def _finish_swap(self, name: str) -> None:
        """Put a completed work folder in the stage's place and record it (also after a kill mid-swap)."""
        swap = self._marker(name, "swap")
        if not swap.is_file():
            return
        try:
            record = json.loads(swap.read_text())
        except (OSError, ValueError):  # the marker itself was cut short: the work folder is not trusted
            warn(f"{swap}: unreadable; the stage {name} will be computed again")
            swap.unlink(missing_ok=True)
            self._marker(name, "pending").unlink(missing_ok=True)
            return
        work, path = self._work(name), self.stage_path(name)
        trash = self.root / STAGES_DIR / "trash" / f"{name.replace('/', '__')}.{os.getpid()}"
        if work.exists():
            if path.exists():
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, trash)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(work, path)
        write_json_atomic(self._marker(name, "done"), record)
        try:
            stages = self.read_manifest().get("stages", {})
        except InputError:
            stages = self._stage_records()
        stages[name] = record
        self.update_manifest(stages=stages)
        swap.unlink()
        shutil.rmtree(self.root / STAGES_DIR / "trash", ignore_errors=True)

    # manifest ---------------------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        """manifest.json as a dict ({} when there is none); an unreadable one is an InputError naming it."""
        path = self.root / MANIFEST
        if not path.is_file():
            return {}
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{path} is unreadable ({exc}); a rerun of `stylesurv run` rebuilds it from the stage records"
            ) from None
        if not isinstance(manifest, dict):
            raise InputError(f"{path} is not a JSON object; a rerun of `stylesurv run` rebuilds it")
        return manifest

    def _stage_records(self) -> dict[str, Any]:
        """Every finished stage's record, read from .stages/ (what an unreadable manifest is rebuilt from)."""
        records = {}
        for marker in sorted((self.root / STAGES_DIR).glob("*.done.json")):
            try:
                name = marker.name.removesuffix(".done.json").replace("__", "/")
                records[name] = json.loads(marker.read_text())
            except (OSError, ValueError):
                continue
        return records

    def update_manifest(self, drop: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into manifest.json, remove the keys ``drop`` (versions are always refreshed),
        and write it atomically; an unreadable manifest is rebuilt from the stages' records."""
        try:
            manifest = self.read_manifest()
        except InputError as exc:
            warn(f"{exc}: rebuilding it")
            manifest = {"stages": self._stage_records()}
        manifest.update(fields)
        for key in drop:
            manifest.pop(key, None)
        manifest["versions"] = package_versions()
        manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json_atomic(self.root / MANIFEST, manifest)
        return manifest
