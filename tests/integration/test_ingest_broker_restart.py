"""Exactly-once ingest through a broker SIGKILL and restart, on a broker of the test's own (the
session's broker is shared: this one is killed)."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafka.errors import KafkaError

from services.common import topics
from services.common.records import decode_views
from services.common.topics import ensure_topics
from services.devtools.kafka_local import LocalKafka
from tests.integration.test_ingest_kafka import _all_committed, _expected_view_ids, _new_view_ids
from tests.support.kafka_io import produce_all, read_all
from tests.support.procs import ROOT, stop_service, wait_for
from tests.support.streams import mixed_stream

pytestmark = pytest.mark.kafka


def _drained(bootstrap: str, topic: str) -> bool:
    """Has ingest's group committed ``topic`` to its end? False while the restarted broker's
    group coordinator is still loading (the admin call raises then)."""
    try:
        return _all_committed(bootstrap, "fraudradar-ingest", topic)
    except KafkaError:
        return False

# what kafka-python's sender logs when a transactional request meets a coordinator it cannot reach
UNREACHABLE = b"Got an exception when trying to find a node to send a transactional request to"


def test_broker_killed_while_committing_ingest_drains_and_writes_each_view_once(tmp_path: Path) -> None:
    """The broker dies (SIGKILL) with a commit's views and offsets in ingest's open transaction
    and ``commit_transaction`` about to be called; the commit's ``EndTxn`` meets the dead
    coordinator (kafka-python drops such a request: unbounded, ingest would wait forever); the
    broker comes back on the same data. Ingest must drain the topic, and a ``read_committed``
    reader see every view exactly once (the abandoned transaction aborted, its records redone)."""
    stream = mixed_stream(6_000, bad_ratio=0.0, seed=17)
    expected = _expected_view_ids(stream)
    with LocalKafka.temporary("fraudradar-kafka-restart-") as broker:
        prefix = "restart."
        ensure_topics(broker.bootstrap, prefix, partitions=3)
        produce_all(broker.bootstrap, prefix + topics.RAW, stream.records)
        marker, release = tmp_path / "held", tmp_path / "release"
        log = tmp_path / "ingest.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FRAUDRADAR_BOOTSTRAP": broker.bootstrap,
               "FRAUDRADAR_TOPIC_PREFIX": prefix, "FRAUDRADAR_HTTP_PORT": "0",
               "FRAUDRADAR_EXACTLY_ONCE": "true", "FRAUDRADAR_TRANSACTION_TIMEOUT_MS": "30000",
               "FRAUDRADAR_MAX_POLL_RECORDS": "500",
               "HOLD_AT_COMMIT": "2", "HOLD_MARKER": str(marker), "HOLD_RELEASE": str(release)}
        proc = subprocess.Popen([sys.executable, "-m", "tests.integration.hold_in_commit", "ingest"], env=env,
                                cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        try:
            assert wait_for(marker.exists, 120), log.read_text()[-3000:]
            broker.kill()
            seen_before = log.stat().st_size
            release.touch()      # commit_transaction now, the broker down
            assert wait_for(lambda: UNREACHABLE in log.read_bytes()[seen_before:], 60), \
                "the commit never met the dead broker: " + log.read_text()[-3000:]
            broker.start()       # same data and ports
            drained = wait_for(lambda: _drained(broker.bootstrap, prefix + topics.RAW), 120, interval_s=1.0)
            assert drained, "ingest did not drain after the restart: " + log.read_text()[-4000:]
            numbers = read_all(broker.bootstrap, prefix + topics.NUMBERS, expect_at_least=len(expected),
                               count=_new_view_ids(set(expected)), timeout_s=60, settle_s=1.0)
        finally:
            code = stop_service(proc)
        assert code == 0, log.read_text()[-3000:]
    ids = collections.Counter(v.view_id for r in numbers for v in decode_views(r.value))
    assert set(ids) == set(expected)
    assert [v for v, n in ids.items() if n > 1] == []
    # the path the fix takes: the unanswered commit abandoned, the producer replaced
    assert b"transactional call unanswered" in log.read_bytes()
