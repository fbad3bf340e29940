"""``fraudradar kafka down --purge``: the broker stops and its data is gone; never under a live broker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from services.devtools import kafka_cli
from services.devtools.kafka_local import KafkaStartError, purge_broker_data
from tests.support.procs import alive


@pytest.mark.kafka
def test_down_purge_stops_the_broker_and_deletes_its_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workdir = tmp_path / "broker"
    assert kafka_cli.main(["up", "--dir", str(workdir), "--json"]) == 0
    pid = json.loads(capsys.readouterr().out)["pid"]
    assert (workdir / "data" / "meta.properties").exists()

    assert kafka_cli.main(["down", "--purge", "--dir", str(workdir)]) == 0
    assert "deleted the broker's data" in capsys.readouterr().err
    assert not alive(pid)
    assert not (workdir / "data").exists() and not (workdir / "kafka.log").exists()
    assert not (workdir / "state.json").exists()


def test_down_without_purge_keeps_the_data(tmp_path: Path) -> None:
    segment = tmp_path / "data" / "t-0" / "00000000000000000000.log"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"x" * 1000)
    assert kafka_cli.main(["down", "--dir", str(tmp_path)]) == 0
    assert segment.exists()
    assert kafka_cli.main(["down", "--purge", "--dir", str(tmp_path)]) == 0
    assert not segment.exists()


def test_purge_refuses_while_the_broker_runs(tmp_path: Path) -> None:
    segment = tmp_path / "data" / "t-0" / "00000000000000000000.log"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"x")
    with subprocess.Popen(["sleep", "60"]) as live:  # a live process named in state.json
        try:
            (tmp_path / "state.json").write_text(json.dumps({"pid": live.pid, "port": 1, "controller_port": 2}))
            with pytest.raises(KafkaStartError, match="is running"):
                purge_broker_data(tmp_path)
            assert segment.exists()
        finally:
            live.kill()
