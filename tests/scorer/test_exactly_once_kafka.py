"""Exactly-once on the real broker: a replica frozen inside its commit transaction, past its
session and its transaction timeout, is fenced by the broker, not by our code.

Replica A (``freeze_in_commit``) stops itself (SIGSTOP) after it has sent a commit's outputs,
changelog and offsets in the open transaction, right before ``commit_transaction``. B takes
A's partitions once A's session ran out; the broker aborts A's transaction when its timeout
passes (bumping the producer epoch). When A resumes, its ``commit_transaction`` is refused
(``ProducerFencedError``): it counts the fence, takes a new producer, rejoins, and the two
finish the stream. ``read_committed`` readers see none of A's frozen transaction; the alerts
are the uninterrupted run's, each exactly once, and so are the risk updates' keys.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from services.common import topics
from services.common.records import decode_alert
from services.devtools.synthetic import Generator
from tests.scorer.test_service_kafka import ROOT, Scorer, _prefix, _produce, _wait_committed

# a loaded machine (CI, other work) stretches the reference run and the restores several-fold
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


def _read(bootstrap: str, topic: str, isolation: str) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """(partition, offset, key, value) of every record ``isolation`` lets a reader see."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)      # read_committed: the last stable offset
        out: list[tuple[int, int, bytes | None, bytes | None]] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, recs in consumer.poll(timeout_ms=500).items():
                out.extend((tp.partition, r.offset, r.key, r.value) for r in recs)
        return out
    finally:
        consumer.close()


class FrozenInCommit(Scorer):
    """A scorer process that SIGSTOPs itself inside the commit transaction of commit ``at``."""

    def __init__(self, bootstrap: str, prefix: str, group: str, log_path: Path, marker: Path, at: int) -> None:
        env = dict(os.environ, FRAUDRADAR_BOOTSTRAP=bootstrap, FRAUDRADAR_TOPIC_PREFIX=prefix,
                   FRAUDRADAR_GROUP_ID=group, FRAUDRADAR_COMMIT_INTERVAL_S="0.3",
                   FRAUDRADAR_CHECKPOINT_INTERVAL_S="1", FRAUDRADAR_SESSION_TIMEOUT_MS="10000",
                   FRAUDRADAR_TRANSACTION_TIMEOUT_MS="5000",
                   FREEZE_AT_COMMIT=str(at), FREEZE_MARKER=str(marker), PYTHONPATH=str(ROOT))
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.scorer.freeze_in_commit", "--http-port", "0"],
                                     env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log)

    def wait_frozen(self, marker: Path, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker.exists() and Path(f"/proc/{self.proc.pid}/stat").read_text().split(")")[1].split()[0] == "T":
                return
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            time.sleep(0.05)
        raise AssertionError("the replica never froze inside a commit")


def _metric(port: object, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


def test_a_replica_frozen_inside_its_transaction_is_fenced_by_the_broker(kafka_bootstrap: str,
                                                                           tmp_path: Path) -> None:
    stream = Generator(seed=17).stream(normal=3000, hours=4, fraud_start_h=2)
    # the reference: one uninterrupted replica
    ref_prefix = _prefix(kafka_bootstrap)
    _produce(kafka_bootstrap, ref_prefix, stream.views)
    ref = Scorer(kafka_bootstrap, ref_prefix, "eos-ref", tmp_path / "ref.log")
    try:
        ref.wait_log("scorer started")
        _wait_committed(kafka_bootstrap, ref_prefix, "eos-ref")
    finally:
        ref.stop()
    ref_alerts = [decode_alert(v) for *_, v in _read(kafka_bootstrap, ref_prefix + topics.ALERTS, "read_committed")
                  if v is not None]
    assert ref_alerts

    prefix = _prefix(kafka_bootstrap)
    _produce(kafka_bootstrap, prefix, stream.views)           # a backlog: A is busy when it freezes
    marker = tmp_path / "frozen"
    a = FrozenInCommit(kafka_bootstrap, prefix, "eos", tmp_path / "a.log", marker, at=3)
    b: Scorer | None = None
    try:
        port = a.wait_log("scorer started")["http_port"]
        a.wait_frozen(marker)
        frozen_state = len(_read(kafka_bootstrap, prefix + topics.SCORER_STATE, "read_uncommitted"))
        b = Scorer(kafka_bootstrap, prefix, "eos", tmp_path / "b.log")
        b.wait_log("partition state restored", timeout=90)    # after A's 10 s session ran out
        time.sleep(2.0)                                       # B processes and commits meanwhile
        a.proc.send_signal(signal.SIGCONT)
        fenced = a.wait_log("producer fenced by the broker: its transaction was aborted; "
                            "a new producer takes its id", timeout=60)
        try:
            _wait_committed(kafka_bootstrap, prefix, "eos")   # A rejoined; the two finish together
        except AssertionError:
            for proc in (a.proc, b.proc):                     # evidence for the open stall: thread stacks
                if proc.poll() is None:
                    proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            raise
        a_fenced = _metric(port, 'fraudradar_transactions_total{outcome="fenced",service="scorer"}')
    finally:
        if a.proc.poll() is None:
            a.proc.send_signal(signal.SIGCONT)
        a.stop()
        if b is not None:
            b.stop()
    assert fenced["error"] in ("ProducerFencedError", "InvalidProducerEpochError")
    assert a_fenced >= 1
    # the frozen transaction was ended by the broker, not by our code: A's first failed
    # transaction is the fence (later ones, until A has rejoined, are offsets refused for its
    # stale membership, KIP-447, which A aborts)
    failures = [e["msg"] for e in a.logs() if e.get("msg") in (fenced["msg"], "transaction aborted")]
    assert failures[0] == fenced["msg"], failures
    assert frozen_state > 0                       # A had written changelog records in the frozen transaction

    # read_committed: the alerts are the reference's, none lost, none twice
    got = [decode_alert(v) for *_, v in _read(kafka_bootstrap, prefix + topics.ALERTS, "read_committed")
           if v is not None]
    counts = Counter(a.alert_id for a in got)
    assert set(counts) == {a.alert_id for a in ref_alerts}
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    # the frozen transaction's records are on the log (read_uncommitted) but never committed
    for topic in (topics.ALERTS, topics.RISK, topics.SCORER_STATE):
        committed = {(p, o) for p, o, *_ in _read(kafka_bootstrap, prefix + topic, "read_committed")}
        everything = {(p, o) for p, o, *_ in _read(kafka_bootstrap, prefix + topic, "read_uncommitted")}
        assert committed < everything or topic != topics.SCORER_STATE, topic
