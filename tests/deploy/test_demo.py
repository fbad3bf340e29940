"""``fraudradar demo`` stops everything it started.

The full demo run (every service, real broker, simulated traffic, summary, API tour, report,
served API, SIGTERM) is ``tests/deploy/test_bank_guide.py``, which runs the bank guide against
it. Here: Ctrl-C (SIGINT) in the middle of a run, with the broker the demo starts itself.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from services.devtools.kafka_local import KAFKA_VERSION, ensure_jars
from tests.support.demo_run import DemoProcess
from tests.support.procs import alive, descendants


@pytest.mark.kafka(child=True)     # the demo starts its own broker (Java) in its process
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_sigint_stops_every_child_and_the_broker_the_demo_started(tmp_path: Path) -> None:
    # A cache of its own (the jars linked from the shared one), holding an earlier demo's data.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"kafka-{KAFKA_VERSION}").symlink_to(ensure_jars(quiet=True).parent)
    old_segment = cache / "broker" / "data" / "demo-20260101000000.fraudradar.risk-0" / "00000000000000000000.log"
    old_segment.parent.mkdir(parents=True)
    old_segment.write_bytes(b"\0" * 2_000_000)

    demo = DemoProcess(["--minutes", "0.5", "--subscribers", "3000", "--sim-duration", "1h", "--out", "demo-out"],
                       cwd=tmp_path, env={"FRAUDRADAR_CACHE": str(cache)})
    # Every process below the demo, seen at any moment until it exits (with its command line
    # then): a child started just as the signal arrives must end too.
    started: set[int] = set()
    commands: dict[int, str] = {}
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set() and demo.proc.poll() is None:
            for pid in descendants(demo.proc.pid):
                started.add(pid)
                # again each time: a child shows its own command line only after exec, none as a zombie
                if command := _cmdline(pid).strip():
                    commands[pid] = command
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert demo.wait_for("deleted the data of an earlier demo's broker (2 MB)", 120), demo.output[-3000:]
        assert demo.wait_for("Kafka up on", 180), demo.output[-3000:]
        # Ctrl-C as the traffic producer is being started (the line comes right before it)
        assert demo.wait_for("streaming ", 240), demo.output[-3000:]
    finally:
        if demo.proc.poll() is None:
            demo.proc.send_signal(signal.SIGINT)
        code = demo.finish(150)
        watching.set()
        watcher.join(10)

    assert code == 128 + signal.SIGINT, demo.output[-3000:]
    assert "stopped on SIGINT" in demo.output
    # ingest, scorer, api and the broker (java), and the traffic producer if it had started
    assert len(started) >= 4, commands
    assert any("kafka.Kafka" in c for c in commands.values()), commands
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not {pid: commands.get(pid) for pid in started if alive(pid)}
    assert not old_segment.exists()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
