"""Worker-process pools whose workers end with their parent, however the parent ends.

A pool's workers outlive a parent killed with SIGKILL (or by the out-of-memory killer): nothing runs in the
parent to stop them, and each may hold hundreds of MB.  Every worker here asks the kernel for SIGKILL when
its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``), and a watchdog thread also ends it once its parent is
gone (other systems, or a parent that died before the request).  With every worker gone, the
multiprocessing resource tracker sees its last pipe close and exits too.  Workers are started with
``spawn`` (no fork of a process that holds threads).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCHDOG_SECONDS = 1.0


def _die_with(parent: int) -> None:
    """In a worker: end this process when ``parent`` is gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog alone
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _start_worker(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    _die_with(parent)
    if initializer is not None:
        initializer(*initargs)


def worker_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A ``spawn`` process pool of ``workers`` whose workers die with this process."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
