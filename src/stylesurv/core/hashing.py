"""Content hashes of files, folders and configs (the stage cache keys), and the versions in a manifest."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from stylesurv.__init__ import __version__
from stylesurv.core.atomic import _json_default

_DEPENDENCIES = (
    "torch", "numpy", "scipy", "pandas", "pillow", "scikit-learn", "scikit-survival", "lifelines",
    "torchsurv", "safetensors", "dlib-bin", "face-recognition-models", "scikit-image",
)  # fmt: skip


# --------------------------------------------------------------------------------------------------- hashes
_KNOWN: dict[tuple[object, ...], str] = {}  # (device, inode, size, mtime_ns, path) -> hash, this process


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes.

    A file is read once per process while its inode, size and modification time stay the same: a run hashes
    its aligned photos as the output of one stage and the input of three others.  A file modified in the
    last two seconds is not remembered (the clock that stamps files is coarse: two writes of the same size
    within one tick would look alike).
    """
    stat = os.stat(path)
    identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, os.fspath(path))
    if identity in _KNOWN:
        return _KNOWN[identity]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    if time.time_ns() - stat.st_mtime_ns > 2_000_000_000:
        _KNOWN[identity] = digest.hexdigest()
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
