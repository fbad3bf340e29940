"""The reliability rig says when its broker went away on its own (no broker needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reliability.rig import Rig
from services.devtools.kafka_local import LocalKafka


def test_a_broker_that_died_on_its_own_is_named_with_the_end_of_its_log(tmp_path: Path) -> None:
    # a full disk killed a full run's broker; 11 checks then failed with "Unable to bootstrap"
    # and nothing in the report said why
    rig = Rig(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    rig.kafka = LocalKafka(workdir=tmp_path / "kafka")
    rig.kafka.workdir.mkdir()
    (rig.kafka.workdir / "kafka.log").write_text(
        "INFO started\nERROR Error while writing to checkpoint file\n"
        "java.io.IOException: No space left on device\nINFO Shutdown complete\n")
    rig.kafka.pid = gone.pid
    trouble = rig.broker_trouble()
    assert trouble is not None
    assert f"pid {gone.pid}) died on its own" in trouble and "No space left on device" in trouble
    rig.kafka.pid = None                     # killed on purpose: kill_broker clears the pid
    assert rig.broker_trouble() is None
    nearly_full = rig.broker_trouble(low_disk_bytes=1 << 62)
    assert nearly_full is not None and "MiB free on the disk of" in nearly_full
