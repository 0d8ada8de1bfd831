"""One process at a time per output folder: an advisory lock with the holder's PID and start time.

``fcntl.flock`` (POSIX) is held for as long as the process lives and released by the kernel when it dies,
however it dies, so a lock left by a killed process is stale by construction and the next process simply
takes it; the file keeps who held it last, which is what the refusal names. Elsewhere (no fcntl) the lock
is a no-op. Network file systems that do not support flock lock nothing; the run folder should be local.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from stylesurv.core.errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_file_for(target: str | os.PathLike[str]) -> Path:
    """The lock beside an output file or folder: ``.<name>.lock`` in its parent (a folder that is replaced
    as a whole must not hold its own lock)."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


def _holder(path: Path) -> str:
    try:
        held = json.loads(path.read_text())
        return f"PID {held['pid']} on {held['host']} since {held['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def folder_lock(target: str | os.PathLike[str], what: str = "output folder") -> Iterator[None]:
    """Hold the lock of ``target`` for the block; another holder is an InputError that names it."""
    path = lock_file_for(target)
    if fcntl is None:  # pragma: no cover
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"{target}: cannot create its lock file {path} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{what} {target} is in use by {_holder(path)}; wait for it to finish or choose another one"
            ) from None
        since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.ftruncate(fd, 0)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def output_lock(target: str | os.PathLike[str]) -> Iterator[None]:
    """The lock of a stage command's output (``--out``), taken by one process of a torchrun job only (rank
    0; its other ranks write into the same output by design)."""
    if os.environ.get("RANK", "0") not in ("", "0"):
        yield
        return
    with folder_lock(target, what="output"):
        yield
