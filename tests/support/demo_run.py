"""``fraudradar demo`` as a real child process whose output a test can wait on, line by line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.procs import ROOT


class DemoProcess:
    """``python -m services.cli demo ARGS`` in ``cwd``; stdout and stderr collected by a thread."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "demo", *args], cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._changed:
                self._lines.append(raw.decode(errors="replace"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, text: str, timeout_s: float) -> bool:
        """True as soon as ``text`` is in the output; False when the demo exits or time is up."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while text not in "".join(self._lines):
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return text in "".join(self._lines)
                self._changed.wait(min(left, 1.0))
            return True

    def finish(self, timeout_s: float) -> int:
        """Wait for the exit (SIGKILL after ``timeout_s``) and the last output; the exit code."""
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        return self.proc.returncode
