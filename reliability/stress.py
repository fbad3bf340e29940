"""CPU oversubscription for ``python -m reliability --stress``: busy processes of our own.

A production node is a loaded machine (CPU throttling, noisy neighbours, GC pauses), and the
zombie-writer window of a commit path is only milliseconds on an idle one. ``CpuHog`` keeps
``workers`` Python processes spinning for the whole run (by default twice the CPUs, so every
service competes for a core); each is a plain busy loop at normal priority, started and stopped
by its own PID. No extra tool is needed (``stress-ng`` would do the same).
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import TracebackType

# a busy loop that exits when its parent (the harness) is gone, so no hog outlives a crash
_SPIN = ("import os,time\n"
         "parent=os.getppid()\n"
         "t=time.monotonic()\n"
         "while True:\n"
         "    if time.monotonic()-t>1:\n"
         "        t=time.monotonic()\n"
         "        if os.getppid()!=parent: break\n")


def default_workers() -> int:
    return 2 * (os.cpu_count() or 1)


class CpuHog:
    """``with CpuHog(n):`` n busy processes run inside the block (none when n is 0)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> CpuHog:
        self.procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for _ in range(self.workers)]
        return self

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait()
        self.procs = []
