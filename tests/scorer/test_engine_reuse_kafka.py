"""Keeping a partition's engine through a rebalance, on the real broker.

After a rebalance the group restarts every partition from its last commit, which is normally
behind the engine (it went on processing between commits). The engine is kept when nobody else
moved on: the partition's changelog ends where the engine's last write left it, and no input
topic's committed offset is past the engine's position. Otherwise it is restored — including
when another replica committed progress on a topic this engine never read (links).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from services.common import topics
from services.common.pseudonym import Pseudonymizer, parse_key
from services.common.records import Link, View, encode
from services.common.stream import StreamRunner
from services.common.topics import ensure_topics
from services.scorer import layout as L
from services.scorer.service import ScorerProcessor, build
from services.scorer.settings import ScorerSettings
from services.scorer.state import entity_key
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.scorer.helpers import pid, sms_out

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]
T0 = 1_790_000_000_000


def _records(bootstrap: str, topic: str, n: int) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    out: list[Any] = []
    while len(out) < n:
        for recs in consumer.poll(timeout_ms=2000).values():
            out += recs
    consumer.close()
    return out[:n]


class Replica:
    """A scorer processor and its runner's clients, driven step by step (no poll loop)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, bootstrap: str, prefix: str, group: str,
                 exactly_once: bool) -> None:
        monkeypatch.setenv("FRAUDRADAR_EXACTLY_ONCE", str(exactly_once).lower())
        monkeypatch.setenv("FRAUDRADAR_BOOTSTRAP", bootstrap)
        monkeypatch.setenv("FRAUDRADAR_TOPIC_PREFIX", prefix)
        monkeypatch.setenv("FRAUDRADAR_GROUP_ID", group)
        monkeypatch.setenv("FRAUDRADAR_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
        runner, processor, _ = build(ScorerSettings())
        self.runner: StreamRunner = runner
        self.processor: ScorerProcessor = processor
        self.tps = {TopicPartition(prefix + name, 0) for name in topics.SCORER_INPUTS}

    def assign(self) -> None:
        self.processor.on_assigned(self.tps)

    def rebalance(self) -> None:
        self.processor.on_revoked(self.tps)
        self.processor.on_assigned(self.tps)

    def process(self, records: list[Any]) -> None:
        if self.runner.transactions is not None:
            self.runner.transactions.begin()
        self.processor.process(records, self.runner.sink)
        self.runner.sink.flush_and_check(30)

    def commit(self, records: list[Any]) -> None:
        """The runner's step 3 and 4: changelog, then the offsets after ``records`` (exactly-once:
        the runner's commit transaction)."""
        if self.runner.transactions is not None:
            for r in records:
                self.runner.committer.processed(TopicPartition(r.topic, r.partition), r.offset, r.offset)
            self.runner.committer.maybe_commit(force=True)
            return
        self.runner.committer.write_steps()
        offsets = {TopicPartition(r.topic, r.partition): OffsetAndMetadata(r.offset + 1, "", -1) for r in records}
        self.runner.consumer.commit(offsets)

    def close(self) -> None:
        self.processor.close()
        self.runner.consumer.close()
        (self.runner.transactions.producer if self.runner.transactions else self.runner.producer).close()


@pytest.mark.parametrize("exactly_once", [True, False], ids=["transactions", "at-least-once"])
def test_an_engine_is_kept_through_a_rebalance_unless_another_replica_moved_on(
        kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, exactly_once: bool) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=1)
    pseudo = Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY))
    me = pid("reuse-me")
    views: list[View] = [sms_out(me, pid(f"friend{i % 3}"), T0 + i * 60_000) for i in range(12)]
    device = pseudo("imei", "35391110116475")
    link = Link(number="", device=device, device_score=80, device_episode_s=T0 // 1000, reason="SIM_HOPPING",
                occurred_ms=T0, key_id=pseudo.key_id, broadcast=True)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for view in views:
        producer.send(prefix + topics.NUMBERS, key=view.entity.encode(), value=encode(view), partition=0)
    for _ in range(2):
        producer.send(prefix + topics.LINKS, key=device.encode(), value=encode(link), partition=0)
    producer.flush()
    producer.close()
    numbers = _records(kafka_bootstrap, prefix + topics.NUMBERS, 12)
    links = _records(kafka_bootstrap, prefix + topics.LINKS, 2)

    group = f"reuse-{uuid.uuid4().hex[:6]}"
    a = Replica(monkeypatch, kafka_bootstrap, prefix, group, exactly_once)
    b = Replica(monkeypatch, kafka_bootstrap, prefix, group, exactly_once)
    try:
        a.assign()
        a.process(numbers[:5])
        first = a.processor.owned[0].scorer
        a.commit(numbers[:5])
        a.process(numbers[5:8])               # progress past the last commit, as between commits

        # 1. a rebalance that hands the partition back: the group restarts from the commit (5),
        # behind the engine (8), and the first record is even on a topic the engine never read
        a.rebalance()
        a.process([links[0]])
        assert a.processor.owned[0].scorer is first
        skipped = first.counters["skipped"]
        a.rebalance()
        a.process([numbers[5]])               # a redelivery the engine already applied: skipped
        assert a.processor.owned[0].scorer is first and first.counters["skipped"] == skipped + 1

        # 2. meanwhile another replica committed progress on links only (no changelog write):
        # committed links (2) are past this engine's position on links (1): restore
        b.runner.consumer.commit({TopicPartition(prefix + topics.LINKS, 0): OffsetAndMetadata(2, "", -1)})
        a.rebalance()
        a.process(numbers[5:9])               # the group restarts from the commit (5)
        second = a.processor.owned[0].scorer
        assert second is not first

        # 3. another replica owned the partition meanwhile, restored it, processed and committed
        # less than this engine had (its commit, 10, is behind this engine's position, 11) — but
        # it wrote the changelog: two writers' delta sequences must not interleave: restore
        a.process([links[1]])
        a.commit([numbers[8], links[1]])
        a.process(numbers[9:11])
        b.assign()
        b.process(numbers[9:10])
        b.commit(numbers[9:10])
        b.processor.on_revoked(b.tps)
        a.rebalance()
        a.process([numbers[10]])
        third = a.processor.owned[0].scorer
        assert third is not second
        # the restored engine holds what the changelog holds: the entity after view 9 (B's write),
        # and view 10 applied on top of it once
        assert third.counters["views"] == 1 and third.counters["skipped"] == 0
        record = third.store.numbers.records[entity_key(me)]
        assert third.store.numbers.layout.unpack(record)[L.N_VIEWS] == 11     # views 0-10, each once
    finally:
        a.close()
        b.close()


def _open_transaction(bootstrap: str, topic: str, n: int) -> KafkaProducer:
    """Another writer's transaction on ``topic`` partition 0, written and flushed but not yet
    committed: to read-committed readers it looks exactly like a committed transaction whose
    marker the broker has not written yet (the last stable offset stays before it)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"other-{uuid.uuid4().hex[:8]}")
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(n):
        producer.send(topic, key=b"k%d" % i, value=b"v", partition=0)
    producer.flush()
    return producer


def test_a_write_not_yet_stable_counts_as_another_writer(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=1)
    state_topic = prefix + topics.SCORER_STATE
    replica = Replica(monkeypatch, kafka_bootstrap, prefix, f"check-{uuid.uuid4().hex[:6]}", True)
    restorer = replica.processor.restorer
    other = _open_transaction(kafka_bootstrap, state_topic, 3)
    try:
        assert restorer._written_since(0, 0) is True      # the last stable offset is still 0
        assert restorer._written_since(0, 3) is False     # nothing after the other writer's records
        other.commit_transaction()
        assert restorer._written_since(0, 3) is False     # its marker is not a data record
    finally:
        other.close()
        replica.close()


def test_a_restore_waits_for_a_commit_whose_marker_is_not_written_yet(
        kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=1)
    state_topic = prefix + topics.SCORER_STATE
    replica = Replica(monkeypatch, kafka_bootstrap, prefix, f"check-{uuid.uuid4().hex[:6]}", True)
    restorer = replica.processor.restorer
    other = _open_transaction(kafka_bootstrap, state_topic, 3)
    committer = threading.Timer(1.0, other.commit_transaction)
    committer.start()
    try:
        # read up to the stable end only once it reached the high watermark seen first: the
        # other writer's three records and its marker (4), not the stable offset of the moment (0)
        assert restorer._stable_end(TopicPartition(state_topic, 0)) == 4
    finally:
        committer.join()
        other.close()
        replica.close()
