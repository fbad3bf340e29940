"""Exactly-once through a rebalance, on the real broker.

A rebalance revokes partitions while the runner's transaction is open: the transaction holds
the outputs of records whose offsets the revoke dropped. Their next owner processes those
records again, and the runner itself restarts the partitions it keeps from their last commit
(``restart_from_commit``), so committing that transaction would make every such output visible
twice to ``read_committed`` readers. The runner aborts it before it sends anything else.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor

from services.common import topics
from services.common.config import CommonSettings
from services.common.stream import CommitPolicy, OutputSink, StreamConfig, StreamRunner
from services.common.stream.transaction import TransactionAborted

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


class Echo:
    """Sends one output per record, keyed by the record's partition and offset."""

    def __init__(self, out_topic: str) -> None:
        self.out_topic = out_topic
        self.records = 0

    def process(self, records: list[Any], sink: OutputSink) -> None:
        for record in records:
            sink.send(self.out_topic, f"{record.partition}:{record.offset}".encode(), b"out", partition=0)
            sink.ok(record)
        self.records += len(records)

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        pass

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        pass


def _read_committed(bootstrap: str, topic: str) -> Counter[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed")
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        keys: Counter[str] = Counter()
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for recs in consumer.poll(timeout_ms=500).values():
                keys.update(r.key.decode() for r in recs if r.key is not None)
        return keys
    finally:
        consumer.close()


def test_a_transaction_open_when_partitions_are_revoked_is_aborted(kafka_bootstrap: str,
                                                                   topic_prefix: str) -> None:
    topic, out_topic = topic_prefix + topics.NUMBERS, topic_prefix + topics.ALERTS
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(30):
        producer.send(topic, value=b"x", partition=i % 3)
    producer.flush()
    producer.close()
    group = f"g{uuid.uuid4().hex[:6]}"
    never = CommitPolicy(3600.0)
    never.committed(time.monotonic())          # the first commit is the final one, at stop
    config = StreamConfig("svc-eos-revoke", group, [topic], topic_prefix + topics.DLQ, exactly_once=True,
                          transactional_id=f"svc-eos-revoke-{group}", commit=never,
                          consumer_overrides={"partition_assignment_strategy": [RangePartitionAssignor]})
    processor = Echo(out_topic)
    runner = StreamRunner(CommonSettings(bootstrap=kafka_bootstrap), config, processor)
    loop = threading.Thread(target=runner.run, daemon=True)
    loop.start()
    other = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False,
                          partition_assignment_strategy=[RangePartitionAssignor])
    try:
        deadline = time.monotonic() + 60
        while processor.records < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processor.records == 30         # all of it in the open transaction
        while not other.assignment() and time.monotonic() < deadline:   # the second member joins
            other.poll(timeout_ms=200, max_records=1)
        assert other.assignment()
        kept = set()
        while time.monotonic() < deadline:     # the runner processes what it kept again
            other.poll(timeout_ms=200, max_records=1)
            kept = {tp.partition for tp in runner._assignment}
            if kept and processor.records >= 30 + 10 * len(kept):
                break
        assert kept and len(kept) < 3
        assert processor.records == 30 + 10 * len(kept)
    finally:
        runner.stop_event.set()                # the final commit: the kept partitions' offsets
        loop.join(timeout=60)
        other.close(autocommit=False)
    outputs = _read_committed(kafka_bootstrap, out_topic)
    # each kept record's output once; none of the records the other member owns now (it
    # committed nothing, so they are its to process)
    assert outputs == Counter({f"{p}:{o}": 1 for p in kept for o in range(10)})


def test_a_partition_holding_only_an_aborted_transaction_is_committed_to_its_end(kafka_bootstrap: str,
                                                                                 topic_prefix: str) -> None:
    """A fenced zombie's transaction can be the last thing on an input partition (the scorer's
    links): its batches and abort marker take offsets and are never returned as records. The
    runner commits past them from where it restarted the partition, else the group lags forever."""
    topic = topic_prefix + topics.LINKS
    zombie = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"zombie-{uuid.uuid4().hex[:6]}")
    zombie.init_transactions()
    zombie.begin_transaction()
    for _ in range(5):
        zombie.send(topic, value=b"aborted", partition=0)
    zombie.flush()
    zombie.abort_transaction()
    zombie.close()
    group = f"g{uuid.uuid4().hex[:6]}"
    config = StreamConfig("svc-eos-aborted-tail", group, [topic], topic_prefix + topics.DLQ, exactly_once=True,
                          transactional_id=f"svc-eos-aborted-tail-{group}", commit=CommitPolicy(0.0))
    processor = Echo(topic_prefix + topics.ALERTS)
    runner = StreamRunner(CommonSettings(bootstrap=kafka_bootstrap), config, processor)
    loop = threading.Thread(target=runner.run, daemon=True)
    loop.start()
    tp = TopicPartition(topic, 0)
    probe = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        end = probe.end_offsets([tp])[tp]       # five records and the abort marker
        assert end == 6
        deadline = time.monotonic() + 60
        committed = None
        while committed != end and time.monotonic() < deadline:
            committed = probe.committed(tp)
            time.sleep(0.2)
        assert committed == end
        assert processor.records == 0          # nothing of the aborted transaction was handed over
    finally:
        runner.stop_event.set()
        loop.join(timeout=60)
        probe.close(autocommit=False)


def test_a_member_removed_from_the_group_commits_no_transaction(kafka_bootstrap: str, topic_prefix: str) -> None:
    """kafka-python resets a removed member's generation to -1 (here: no poll for longer than
    ``max.poll.interval.ms``, so its own heartbeat thread leaves the group). The broker accepts
    ``TxnOffsetCommit`` with generation -1 and no member id without any group check, so the
    runner must not send it: the transaction is aborted and neither outputs nor offsets commit."""
    topic, out_topic = topic_prefix + topics.NUMBERS, topic_prefix + topics.ALERTS
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(10):
        producer.send(topic, value=b"x", partition=i % 3)
    producer.flush()
    producer.close()
    group = f"g{uuid.uuid4().hex[:6]}"
    config = StreamConfig("svc-eos-removed", group, [topic], topic_prefix + topics.DLQ, exactly_once=True,
                          transactional_id=f"svc-eos-removed-{group}", commit=CommitPolicy(3600.0),
                          consumer_overrides={"max_poll_interval_ms": 3000, "session_timeout_ms": 6000,
                                              "heartbeat_interval_ms": 500})
    processor = Echo(out_topic)
    runner = StreamRunner(CommonSettings(bootstrap=kafka_bootstrap), config, processor)
    probe = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        runner.transactions.init()          # type: ignore[union-attr]
        runner.consumer.subscribe([topic], listener=runner.listener)
        deadline = time.monotonic() + 60
        while processor.records < 10 and time.monotonic() < deadline:
            polled = runner.consumer.poll(timeout_ms=200)
            if runner.restart.waiting:
                polled = runner.restart.apply(polled, runner._assignment)
            if polled:
                runner._handle(polled)
        assert processor.records == 10           # outputs sent in the open transaction
        time.sleep(5.0)                          # past the poll interval: the member leaves the group
        assert runner.consumer.group_metadata().generation_id < 0
        with pytest.raises(TransactionAborted):
            runner.committer.maybe_commit(force=True)
        tps = [TopicPartition(topic, p) for p in range(3)]
        assert all(probe.committed(tp) is None for tp in tps)
    finally:
        runner.consumer.close(autocommit=False)
        runner.transactions.producer.close(timeout=5)      # type: ignore[union-attr]
        probe.close(autocommit=False)
    assert _read_committed(kafka_bootstrap, out_topic) == Counter()


def test_a_send_after_the_broker_aborted_the_open_transaction_redoes_from_the_commit(
        kafka_bootstrap: str, topic_prefix: str) -> None:
    """A replica frozen *while processing* past the transaction timeout: the broker aborts the
    open transaction and fences the producer; the next send raises kafka-python's wrapped
    ``ProducerFencedError``. The runner takes it as a fence (a new producer, a restart from the
    last commit), not as a fatal error that stops the service."""
    topic, out_topic = topic_prefix + topics.NUMBERS, topic_prefix + topics.ALERTS
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(20):
        producer.send(topic, value=b"x", partition=0)
    producer.flush()
    producer.close()
    group = f"g{uuid.uuid4().hex[:6]}"
    config = StreamConfig("svc-eos-timeout", group, [topic], topic_prefix + topics.DLQ, exactly_once=True,
                          transactional_id=f"svc-eos-timeout-{group}", commit=CommitPolicy(3600.0),
                          transaction_timeout_ms=2000, max_poll_records=10)
    processor = Echo(out_topic)
    runner = StreamRunner(CommonSettings(bootstrap=kafka_bootstrap), config, processor)
    try:
        runner.transactions.init()          # type: ignore[union-attr]
        runner.consumer.subscribe([topic], listener=runner.listener)
        deadline = time.monotonic() + 60
        while processor.records < 10 and time.monotonic() < deadline:
            polled = runner.consumer.poll(timeout_ms=200, max_records=10)
            if runner.restart.waiting:
                polled = runner.restart.apply(polled, runner._assignment)
            if polled:
                runner._handle(polled)
        assert processor.records == 10
        old_producer = runner.transactions.producer    # type: ignore[union-attr]
        time.sleep(4.0)                      # past the 2 s timeout (the broker checks every second)
        polled = {}
        while not polled and time.monotonic() < deadline:
            polled = runner.consumer.poll(timeout_ms=200, max_records=10)
        with pytest.raises(TransactionAborted) as aborted:
            runner._handle(polled)
        assert aborted.value.fenced
        assert runner.transactions.producer is not old_producer   # type: ignore[union-attr]
    finally:
        runner.consumer.close(autocommit=False)
        runner.transactions.producer.close(timeout=5)      # type: ignore[union-attr]


def test_offsets_the_group_refused_are_not_committed_with_the_next_transaction(kafka_bootstrap: str,
                                                                               topic_prefix: str) -> None:
    """A replica that lost its partitions while frozen has its transaction's offsets refused
    (stale membership, KIP-447) and aborts. kafka-python 3.0.12 keeps the refused offsets in the
    producer and sends them again with the next transaction's own: a partition the replica no
    longer works on (or already stands past) had its committed offset moved back, and showed lag
    forever. ``Transactions.send_offsets`` commits exactly the offsets it is given."""
    from kafka.structs import OffsetAndMetadata

    from services.common.stream.transaction import Transactions

    topic = topic_prefix + topics.NUMBERS
    group = f"g{uuid.uuid4().hex[:6]}"
    member = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    probe = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    txn = Transactions("svc-eos-refused", lambda: KafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"svc-eos-refused-{group}", enable_idempotence=True))
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        member.subscribe([topic])
        deadline = time.monotonic() + 60
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(timeout_ms=200)
        membership = member.group_metadata()
        assert membership.generation_id >= 1
        txn.init()
        # the frozen replica's commit: its generation is no longer the group's
        txn.begin()
        stale = membership._replace(generation_id=membership.generation_id + 7)
        with pytest.raises(Exception, match="IllegalGeneration"):
            txn.send_offsets({tp0: OffsetAndMetadata(5, "", -1), tp1: OffsetAndMetadata(9, "", -1)}, stale)
        aborted = txn.failed(RuntimeError("offsets refused"))
        assert not aborted.fenced
        # the next transaction (the replica rejoined) commits only what it processed since
        txn.begin()
        txn.send_offsets({tp0: OffsetAndMetadata(3, "", -1)}, member.group_metadata())
        txn.commit()
        txn.committed()
        assert probe.committed(tp0) == 3
        assert probe.committed(tp1) is None      # the refused offset (9) is not committed later
    finally:
        member.close(autocommit=False)
        probe.close(autocommit=False)
        txn.producer.close(timeout=5)
