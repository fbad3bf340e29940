"""The stream loop in a consumer group, on the real broker: the membership check before a
commit, and restarting every partition from its last commit after a rebalance.

A consumer that stops polling for longer than ``max.poll.interval.ms`` (a batch stuck in a slow
restore, a long pause) is taken out of the group by its own heartbeat thread; another replica
can then own its partitions. The loop must not write state or offsets for them afterwards:
the commit steps (where the scorer writes its changelog) are never reached, nothing is
committed, and the fence is counted. (The broker refusing a member it removed while the whole
process was frozen is tested with the scorer: tests/scorer/test_service_kafka.py.)

kafka-python 3.0.12 keeps the fetch position of a partition a member keeps through a
rebalance; a stateful service restores such a partition from what was committed, so the loop
seeks it back to the committed offset (``restart_from_commit``).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from prometheus_client import REGISTRY

from services.common import topics
from services.common.config import CommonSettings
from services.common.stream import CommitPolicy, OutputSink, StreamConfig, StreamRunner

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


class Counting:
    """A processor that only records what it was handed."""

    def __init__(self) -> None:
        self.records = 0
        self.seen: list[tuple[int, int]] = []      # (partition, offset)

    def process(self, records: list[Any], sink: OutputSink) -> None:
        self.records += len(records)
        for record in records:
            self.seen.append((record.partition, record.offset))
            sink.ok(record)

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        pass

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        pass


class Stateful:
    """A commit step (the scorer writes its changelog in one) that records each call."""

    def __init__(self) -> None:
        self.before_commit_calls = 0

    def write(self, sink: OutputSink, generation: int, member: str) -> None:
        self.before_commit_calls += 1

    def written(self) -> None:
        pass


def _fenced(service: str) -> float:
    return REGISTRY.get_sample_value("fraudradar_consumer_commits_fenced_total", {"service": service}) or 0.0


def _committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp: om.offset for tp, om in admin.list_group_offsets({group: None}).get(group, {}).items()}
    finally:
        admin.close()


def test_a_consumer_past_its_poll_interval_writes_neither_state_nor_offsets(kafka_bootstrap: str,
                                                                           topic_prefix: str) -> None:
    topic = topic_prefix + topics.NUMBERS
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(30):
        producer.send(topic, key=str(i).encode(), value=b"x")
    producer.flush()
    producer.close()
    group, service = f"g{uuid.uuid4().hex[:6]}", f"svc{uuid.uuid4().hex[:6]}"
    config = StreamConfig(service, group, [topic], topic_prefix + topics.DLQ, fence_commits=True,
                          consumer_overrides={"max_poll_interval_ms": 3000, "session_timeout_ms": 6000,
                                              "heartbeat_interval_ms": 500})
    step = Stateful()
    runner = StreamRunner(CommonSettings(bootstrap=kafka_bootstrap), config, Counting(), commit_steps=[step])
    processor: Counting = runner.processor  # type: ignore[assignment]
    try:
        runner.consumer.subscribe([topic], listener=runner.listener)
        deadline = time.monotonic() + 60
        while processor.records < 15 and time.monotonic() < deadline:
            polled = runner.consumer.poll(timeout_ms=200, max_records=15 - processor.records)
            if polled:
                runner._handle(polled)
        assert processor.records == 15
        # a member in good standing: the check passes and the commit goes through
        assert runner.committer.membership_problem() is None
        runner.committer.maybe_commit(force=True)
        assert step.before_commit_calls == 1
        assert sum(_committed(kafka_bootstrap, group).values()) == 15

        polled = runner.consumer.poll(timeout_ms=2000, max_records=15)
        runner._handle(polled)                  # the rest, then no poll for longer than the interval
        assert processor.records == 30
        # past max.poll.interval (3 s) the consumer leaves the group; until then the check passes
        # (and commits only the offsets already committed)
        deadline = time.monotonic() + 30
        while (problem := runner.committer.membership_problem()) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert problem == "lost"
        assert sum(_committed(kafka_bootstrap, group).values()) == 15
        fenced = _fenced(service)
        runner.committer.maybe_commit(force=True)
        assert step.before_commit_calls == 1  # no state written
        assert _fenced(service) == fenced + 1
        assert sum(_committed(kafka_bootstrap, group).values()) == 15   # no offsets either
        assert not runner.committer.pending              # redelivered to whoever owns the partitions now
    finally:
        runner.consumer.close(autocommit=False)
        runner.producer.close(timeout=5)


@pytest.mark.parametrize("restart", [True, False])
def test_a_partition_kept_through_a_rebalance_restarts_from_its_last_commit(
        kafka_bootstrap: str, topic_prefix: str, restart: bool) -> None:
    """Records processed and not yet committed on a partition the runner keeps through a
    rebalance come again (from the committed offset, here the beginning); the control without
    ``restart_from_commit`` shows kafka-python does not redeliver them."""
    topic = topic_prefix + topics.NUMBERS
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(30):
        producer.send(topic, value=b"x", partition=i % 3)
    producer.flush()
    producer.close()
    group = f"g{uuid.uuid4().hex[:6]}"
    never = CommitPolicy(3600.0)
    never.committed(time.monotonic())          # nothing committed before the rebalance
    config = StreamConfig("svc-restart", group, [topic], topic_prefix + topics.DLQ, restart_from_commit=restart,
                          commit=never,
                          consumer_overrides={"partition_assignment_strategy": [RangePartitionAssignor]})
    processor = Counting()
    runner = StreamRunner(CommonSettings(bootstrap=kafka_bootstrap), config, processor)
    loop = threading.Thread(target=runner.run, daemon=True)
    loop.start()
    other = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False,
                          partition_assignment_strategy=[RangePartitionAssignor])
    try:
        deadline = time.monotonic() + 60
        while processor.records < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processor.records == 30
        first_pass = len(processor.seen)
        while not other.assignment() and time.monotonic() < deadline:   # the second member joins
            other.poll(timeout_ms=200, max_records=1)
        assert other.assignment()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:       # let the runner poll after the rebalance
            other.poll(timeout_ms=200, max_records=1)
        kept = {tp.partition for tp in runner._assignment}
        assert kept and len(kept) < 3
        again = sorted(off for p, off in processor.seen[first_pass:] if p in kept)
        expected = sorted(off for p, off in processor.seen[:first_pass] if p in kept) if restart else []
        assert again == expected
    finally:
        runner.stop_event.set()
        loop.join(timeout=60)
        other.close(autocommit=False)
