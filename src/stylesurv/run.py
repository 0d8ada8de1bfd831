"""Run folders: atomic writes, content hashes, stage caching and the run's manifest.json.

A stage is a pure function of its inputs and config.  Its key is the hash of both; the stage writes into a
stage folder with atomic writes and is marked done only when it returns, so a run killed half-way leaves no
half-written file, downstream stages never see an unfinished stage, and the next run resumes that stage.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylesurv import __version__
from stylesurv.console import info

MANIFEST = "manifest.json"
STAGES_DIR = ".stages"  # RUN/.stages/<stage>.done.json and .pending.json: the stage bookkeeping
_DEPENDENCIES = (
    "torch", "numpy", "scipy", "pandas", "pillow", "scikit-learn", "scikit-survival", "lifelines",
    "torchsurv", "safetensors", "dlib-bin", "face-recognition-models", "scikit-image",
)  # fmt: skip


# ----------------------------------------------------------------------------------------------- atomic IO
def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600; final files get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header in sorted key order (8-byte aligned with spaces).

    The safetensors library writes metadata in hash-map order, which changes from process to process; a
    canonical header makes equal tensors and metadata give equal bytes, so content hashes are stable.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size :]


def write_safetensors_atomic(
    path: str | os.PathLike[str], tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> None:
    """Write torch tensors (or numpy arrays) as a canonical safetensors file, atomically."""
    first = next(iter(tensors.values()), None)
    if first is not None and not hasattr(first, "detach"):
        from safetensors.numpy import save
    else:
        from safetensors.torch import save
    data = save(dict(tensors), metadata=dict(metadata) if metadata is not None else None)
    write_bytes_atomic(path, canonical_safetensors(data))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


# --------------------------------------------------------------------------------------------------- hashes
def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 over a file, or over every file of a folder (relative names and contents, sorted).

    Hidden files (temporaries, stage markers) are skipped so that a folder hashes the same before and after
    a stage records itself in it.
    """
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue
        digest.update(rel.as_posix().encode() + b"\0" + sha256_file(file).encode() + b"\0")
    return digest.hexdigest()


def hash_config(config: Any) -> str:
    """Hex SHA-256 of a JSON-serialisable config in canonical form."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of Python, stylesurv and its main dependencies, for the manifest."""
    versions = {"python": platform.python_version(), "stylesurv": __version__}
    for name in _DEPENDENCIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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
