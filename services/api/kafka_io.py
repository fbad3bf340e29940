"""Typed Kafka plumbing of the API: one producer for audit, feedback and partner state, and
the materialiser that reads risk, alerts and partner state into this process.

The materialiser assigns itself *every* partition (no consumer group): each replica builds
the whole picture on its own. It reads ``fraudradar.partner-state`` to its end first (webhook
cursors must be known before events are replayed), then ``fraudradar.risk`` from the
beginning and ``fraudradar.alerts`` from the start of the retention window. It counts as
caught up once it reached the end offsets taken at start. Blocking: it runs on its own thread
and hands each decoded batch to the event loop, waiting for it to be applied (one batch in
flight: back-pressure without sleeping).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from services.api.metrics import CONSUMER_LAG, CONSUMER_RECORDS, MATERIALISE_LAG
from services.api.partner_state import StateRecord, decode_state
from services.common.records import Alert, Risk, decode_alert, decode_risk

log = logging.getLogger("fraudradar.api.materialise")

Kind = Literal["risk", "alert", "state"]


@dataclass(frozen=True)
class Change:
    kind: Kind
    partition: int
    offset: int
    key: str
    value: Risk | Alert | StateRecord | None
    timestamp_ms: int


class Producer:
    """Send records; ``send`` returns a future, ``send_and_wait`` blocks for the broker's ack."""

    def __init__(self, kafka_config: dict[str, Any]) -> None:
        self._producer = KafkaProducer(acks="all", linger_ms=20, compression_type=None, **kafka_config)
        self.failures = 0

    def send(self, topic: str, key: str, value: bytes | None) -> Any:
        future = self._producer.send(topic, key=key.encode(), value=value)
        future.add_errback(self._on_error, topic)
        return future

    def _on_error(self, exc: BaseException, topic: str) -> None:
        self.failures += 1
        log.error("produce to %s failed: %s", topic, exc)

    def send_and_wait(self, topic: str, key: str, value: bytes | None, timeout_s: float = 10.0) -> None:
        self.send(topic, key, value).get(timeout=timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        try:
            self._producer.flush(timeout=10)
        finally:
            self._producer.close(timeout=5)


class Materialiser:
    """Reads the three topics into the process; ``ready`` once caught up with the start ends."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        topics: dict[Kind, str],
        alerts_retention_s: float,
        apply: Callable[[list[Change]], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._config = kafka_config
        self._topics = topics
        self._kind_of = {name: kind for kind, name in topics.items()}
        self._retention_s = alerts_retention_s
        self._apply = apply
        self._loop = loop
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="materialiser", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self._consume()
        except BaseException as exc:  # surfaced by /readyz; the process stays up to report it
            self.failed = exc
            log.exception("materialiser stopped")

    def _consume(self) -> None:
        consumer = KafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=2000,
            **self._config,
        )
        try:
            partitions: dict[Kind, list[TopicPartition]] = {}
            for kind, topic in self._topics.items():
                ids = None
                deadline = time.monotonic() + 30
                while not ids and time.monotonic() < deadline and not self._stop.is_set():
                    ids = consumer.partitions_for_topic(topic)
                    if not ids:
                        time.sleep(0.2)
                if not ids:
                    raise RuntimeError(f"topic {topic} does not exist")
                partitions[kind] = [TopicPartition(topic, p) for p in sorted(ids)]
            everything = [tp for tps in partitions.values() for tp in tps]
            consumer.assign(everything)
            consumer.seek_to_beginning(*partitions["risk"], *partitions["state"])
            since_ms = int((time.time() - self._retention_s) * 1000)
            found = consumer.offsets_for_times({tp: since_ms for tp in partitions["alert"]})
            ends = consumer.end_offsets(everything)
            for tp in partitions["alert"]:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])
            # Phase 1: partner state alone; phase 2: everything.
            others = partitions["risk"] + partitions["alert"]
            consumer.pause(*others)
            phase_one = True
            last_lag = 0.0
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=200)
                changes = self._decode(batch)
                if changes:
                    self._hand_over(changes)
                now = time.monotonic()
                if phase_one and all(consumer.position(tp) >= ends[tp] for tp in partitions["state"]):
                    consumer.resume(*others)
                    phase_one = False
                if (
                    not phase_one
                    and not self.ready.is_set()
                    and all(consumer.position(tp) >= ends[tp] for tp in everything)
                ):
                    log.info("materialised: caught up")
                    self.ready.set()
                if now - last_lag > 5.0 or (not self.ready.is_set() and now - last_lag > 1.0):
                    last_lag = now
                    self._report_lag(consumer, everything)
        finally:
            consumer.close()

    def _decode(self, batch: dict[TopicPartition, list[Any]]) -> list[Change]:
        changes: list[Change] = []
        for tp, records in batch.items():
            kind = self._kind_of[tp.topic]
            CONSUMER_RECORDS.labels("api", tp.topic).inc(len(records))
            for record in records:
                key = record.key.decode() if record.key else ""
                try:
                    value: Risk | Alert | StateRecord | None
                    if record.value is None:
                        value = None
                    elif kind == "risk":
                        value = decode_risk(record.value)
                    elif kind == "alert":
                        value = decode_alert(record.value)
                    else:
                        value = decode_state(record.value)
                except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
                    log.warning(
                        "skipping undecodable record %s[%d]@%d: %s",
                        tp.topic,
                        tp.partition,
                        record.offset,
                        exc,
                    )
                    continue
                changes.append(Change(kind, tp.partition, record.offset, key, value, record.timestamp))
        return changes

    def _hand_over(self, changes: list[Change]) -> None:
        done = threading.Event()

        def apply() -> None:
            try:
                self._apply(changes)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(apply)
        while not done.wait(0.5):
            if self._stop.is_set() or self._loop.is_closed():
                return

    def _report_lag(self, consumer: KafkaConsumer, tps: list[TopicPartition]) -> None:
        try:
            ends = consumer.end_offsets(tps)
        except KafkaError as exc:
            log.warning("cannot read end offsets: %s", exc)
            return
        per_topic: dict[str, int] = {}
        for tp in tps:
            lag = max(0, ends[tp] - consumer.position(tp))
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + lag
            CONSUMER_LAG.labels("api", tp.topic, str(tp.partition)).set(lag)
        for topic, lag in per_topic.items():
            MATERIALISE_LAG.labels(topic).set(lag)
