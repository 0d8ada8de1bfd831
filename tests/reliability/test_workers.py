"""Worker pools end with their parent: kill -9 of the parent leaves no worker and no resource tracker.

Linux, like the project (dlib wheels, PR_SET_PDEATHSIG): processes are read from /proc, where a zombie
that nobody reaps is told apart from a live process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import os, sys, time
from stylesurv.core.workers import worker_pool
pool = worker_pool(2)
pids = set()
while len(pids) < 2:  # both workers started
    pids |= {f.result() for f in [pool.submit(os.getpid) for _ in range(4)]}
for _ in range(2):
    pool.submit(time.sleep, 120)
print(" ".join(map(str, sorted(pids))), flush=True)
time.sleep(120)
"""


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_the_parent_ends_its_workers_and_the_resource_tracker():
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        workers = {int(p) for p in parent.stdout.readline().split()}
        children = _children(parent.pid)
        assert len(workers) == 2 and workers <= children  # the tracker is the other child
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.2)
        assert not [p for p in children if _alive(p)], "processes outlived their parent"
    finally:
        parent.kill()
        parent.stdout.close()
