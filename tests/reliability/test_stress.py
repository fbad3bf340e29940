"""The parts of ``--stress`` and of the commit-path freezes, without a broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from reliability.rig import ROOT
from reliability.stress import CpuHog
from services.common.stream.commit import Committer


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])    # utime + stime


def test_the_cpu_hog_runs_its_workers_inside_the_block_only() -> None:
    with CpuHog(2) as hog:
        pids = [p.pid for p in hog.procs]
        assert hog.alive() == 2
        # Each worker burns CPU (a freshly exec'd process may be in D while it loads; the
        # evidence that it spins is its CPU time growing, not a state letter at one instant).
        deadline = time.monotonic() + 60
        while (any(_cpu_ticks(pid) < 5 for pid in pids) and hog.alive() == 2
               and time.monotonic() < deadline):
            time.sleep(0.1)
        assert hog.alive() == 2
        assert all(_cpu_ticks(pid) >= 5 for pid in pids)
    assert all(not Path(f"/proc/{pid}").exists() or _state(pid) == "Z" for pid in pids)
    with CpuHog(0) as none:
        assert none.alive() == 0


def test_importing_commit_freeze_changes_nothing() -> None:
    before = Committer.before_commit
    import reliability.commit_freeze  # noqa: F401

    assert Committer.before_commit is before


def test_a_process_with_the_trigger_stops_itself_right_before_its_commit(tmp_path: Path) -> None:
    trigger = tmp_path / "trigger"
    trigger.touch()
    code = ("import sys; from pathlib import Path; from reliability.commit_freeze import install\n"
            "from services.common.stream.commit import Committer\n"
            f"install(Path({str(trigger)!r})); Committer.before_commit(None); print('committed')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _state(proc.pid) != "T" and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(proc.pid) == "T"          # stopped inside the commit path
        assert not trigger.exists()             # once: the next commit runs through
        proc.send_signal(signal.SIGCONT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.strip() == b"committed"
