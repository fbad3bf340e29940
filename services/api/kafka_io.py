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
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from confluent_kafka import KafkaException
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from services.api.exceptions import AuditUnavailable
from services.api.metrics import (
    AUDIT_ACKED,
    AUDIT_DROPPED,
    AUDIT_FAILED,
    CONSUMER_LAG,
    CONSUMER_RECORDS,
    MATERIALISE_LAG,
)
from services.api.partner_state import StateRecord, decode_state
from services.common.records import Alert, Risk, decode_alert, decode_risk

log = logging.getLogger("fraudradar.api.materialise")

Kind = Literal["risk", "alert", "state"]


def run_on_loop(loop: asyncio.AbstractEventLoop, stop: threading.Event, apply: Callable[[], None]) -> None:
    """From a consumer thread: run ``apply`` on the event loop (the only writer of the stores) and
    wait until it ran, or until the consumer stops or the loop is closed."""
    done = threading.Event()

    def run() -> None:
        try:
            apply()
        finally:
            done.set()

    loop.call_soon_threadsafe(run)
    while not done.wait(0.5):
        if stop.is_set() or loop.is_closed():
            return


@dataclass(frozen=True)
class Change:
    kind: Kind
    partition: int
    offset: int
    key: str
    value: Risk | Alert | StateRecord | None
    timestamp_ms: int


def librdkafka_config(kafka_config: dict[str, Any]) -> dict[str, Any]:
    """Translate the project's kafka-python settings into librdkafka's names."""
    names = {
        "security_protocol": "security.protocol",
        "sasl_mechanism": "sasl.mechanism",
        "sasl_plain_username": "sasl.username",
        "sasl_plain_password": "sasl.password",
        "ssl_cafile": "ssl.ca.location",
        "ssl_certfile": "ssl.certificate.location",
        "ssl_keyfile": "ssl.key.location",
    }
    out: dict[str, Any] = {"bootstrap.servers": ",".join(kafka_config["bootstrap_servers"])}
    for name, value in kafka_config.items():
        if name in names and value is not None:
            out[names[name]] = value
    return out


class Producer:
    """Sends audit, feedback and partner-state records.

    librdkafka (confluent-kafka) rather than kafka-python here: every lookup produces an audit
    record, and librdkafka's produce call is a few microseconds with batching and I/O on its
    own threads outside the GIL, where kafka-python's costs about a tenth of a millisecond of
    Python per record and its I/O thread stalls the event loop (bench/api.py measured half the
    throughput and 60 ms p99 stalls).

    * ``send_audit``: queued at once (the lookup is answered without waiting), then tracked
      until Kafka acknowledges it. librdkafka retries within ``delivery_timeout_s``; a record
      that still fails is queued again (every second, until acknowledged), so a broker outage
      delays audit records but does not lose them while the process lives. ``audit_stalled_s``
      says how long records have been waiting with no acknowledgement at all: the service
      turns not-ready (and refuses lookups) past ``FRAUDRADAR_AUDIT_STALL_S``. A record that
      cannot even be queued raises ``AuditUnavailable``, so the lookup is refused rather than
      answered unaudited. ``close`` flushes; what is still unacknowledged then is counted
      ``dropped`` and logged.
    * ``send``: fire-and-forget with failures counted (webhook delivery cursors: a lost one
      means some events are delivered again).
    * ``send_and_wait``: blocks until the broker acknowledged (acks=all, idempotent).

    Threads: ``send*`` run on the event loop (``send_and_wait`` in a worker thread); delivery
    callbacks and re-sends run on the ``producer-callbacks`` thread. Each counter has one
    writer, so no lock is needed.
    """

    RETRY_INTERVAL_S = 1.0

    def __init__(self, kafka_config: dict[str, Any], *, delivery_timeout_s: float = 60.0) -> None:
        from confluent_kafka import Producer as RdProducer

        config = {
            **librdkafka_config(kafka_config),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "delivery.timeout.ms": int(delivery_timeout_s * 1000),
            "client.id": "fraudradar-api",
            # Kafka's Java / kafka-python partitioner: a keyed record lands where ingest's records
            # with that key do (pre-announcements on fraudradar.calls, beside the subscriber's steps)
            "partitioner": "murmur2_random",
        }
        self._producer = RdProducer(config)
        self.failures = 0
        # audit accounting: sent (event loop) - acked - lost (callbacks thread) = in flight
        self._audit_sent = 0
        self._audit_acked = 0
        self._audit_lost = 0
        self._last_progress = time.monotonic()
        self._retry: deque[Any] = deque()
        self._retry_max = 100_000
        self._closing = False
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve_callbacks, name="producer-callbacks", daemon=True)
        self._poller.start()

    def _serve_callbacks(self) -> None:
        next_retry = 0.0
        while not self._stop.is_set():
            self._producer.poll(0.1)
            if self._retry and time.monotonic() >= next_retry:
                next_retry = time.monotonic() + self.RETRY_INTERVAL_S
                self._resend()

    def _resend(self) -> None:
        while self._retry:
            msg = self._retry.popleft()
            try:
                self._producer.produce(
                    msg.topic(), key=msg.key(), value=msg.value(), on_delivery=self._on_audit_delivery
                )
            except BufferError:
                self._retry.appendleft(msg)  # the queue is full: try again at the next round
                return

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failures += 1
            log.error("produce to %s failed: %s", msg.topic(), err)

    def _on_audit_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self._audit_acked += 1
            self._last_progress = time.monotonic()
            AUDIT_ACKED.inc()
            return
        AUDIT_FAILED.inc()
        if self._closing or len(self._retry) >= self._retry_max:
            self._audit_lost += 1
            AUDIT_DROPPED.inc()
            log.error("audit record to %s lost: %s", msg.topic(), err)
            return
        if not self._retry:
            log.warning("audit record to %s failed (%s): sending it again", msg.topic(), err)
        self._retry.append(msg)

    def send_audit(self, topic: str, key: str, value: bytes) -> None:
        """Queue one audit record; raise ``AuditUnavailable`` if it cannot be queued."""
        if self._audit_sent == self._audit_acked + self._audit_lost:
            self._last_progress = time.monotonic()  # idle until now: the stall clock starts here
        try:
            self._producer.produce(topic, key=key.encode(), value=value, on_delivery=self._on_audit_delivery)
        except (BufferError, KafkaException) as exc:
            AUDIT_DROPPED.inc()
            raise AuditUnavailable(f"audit record not queued: {exc}") from exc
        self._audit_sent += 1

    def audit_in_flight(self) -> int:
        return max(0, self._audit_sent - self._audit_acked - self._audit_lost)

    def audit_stalled_s(self) -> float:
        """Seconds audit records have waited without any acknowledgement (0 when none wait)."""
        if self.audit_in_flight() == 0:
            return 0.0
        return max(0.0, time.monotonic() - self._last_progress)

    def send(self, topic: str, key: str, value: bytes | None) -> None:
        try:
            self._producer.produce(topic, key=key.encode(), value=value, on_delivery=self._on_delivery)
        except BufferError:
            self.failures += 1
            log.error("produce queue full: record for %s dropped", topic)

    def send_and_wait(self, topic: str, key: str, value: bytes | None, timeout_s: float = 10.0) -> None:
        done = threading.Event()
        outcome: list[Any] = []

        def delivered(err: Any, msg: Any) -> None:
            outcome.append(err)
            done.set()

        self._producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)
        if not done.wait(timeout_s):
            raise KafkaTimeoutError(f"no acknowledgement from {topic} within {timeout_s}s")
        if outcome[0] is not None:
            raise KafkaError(str(outcome[0]))

    def flush(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the callbacks thread, then flush here: what is not acknowledged is lost."""
        self._stop.set()
        self._poller.join(5)
        self._closing = True
        self._resend()
        left = self._producer.flush(timeout_s)
        lost = self.audit_in_flight()
        if lost or left:
            AUDIT_DROPPED.inc(lost)
            self._audit_lost += lost
            log.error("shutdown: %d audit records and %d records in all not acknowledged", lost, left)
        self._producer.close()


class ConsumerThread:
    """A daemon thread that consumes into the process until ``stop``: ``ready`` once caught up,
    ``failed`` holds what stopped it (surfaced by /readyz and the routes; the process stays up to
    report it). Subclasses implement ``_consume``."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self._consume()
        except BaseException as exc:
            self.failed = exc
            log.exception("%s stopped", self._thread.name)

    def _consume(self) -> None:
        raise NotImplementedError


class TopicReplay(ConsumerThread):
    """Every partition of one topic, committed records only (its writers are transactional), from
    ``_since_ms()`` on; ``ready`` once caught up with the ends seen at start. Subclasses decode a
    polled batch (``_decode``) and apply it on the event loop (``apply``)."""

    poll_ms = 50

    def __init__(self, name: str, kafka_config: dict[str, Any], topic: str, loop: asyncio.AbstractEventLoop) -> None:
        self._config = kafka_config
        self.topic = topic
        super().__init__(name, loop)

    def _since_ms(self) -> int:
        raise NotImplementedError

    def _decode(self, batch: dict[TopicPartition, list[Any]]) -> list[Any]:
        raise NotImplementedError

    def apply(self, records: list[Any]) -> None:
        raise NotImplementedError

    def _consume(self) -> None:
        consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                 isolation_level="read_committed", max_poll_records=5000,
                                 fetch_max_wait_ms=self.poll_ms, **self._config)
        try:
            ids = None
            deadline = time.monotonic() + 30
            while not ids and time.monotonic() < deadline and not self._stop.is_set():
                ids = consumer.partitions_for_topic(self.topic)
                if not ids:
                    time.sleep(0.2)
            if not ids:
                raise RuntimeError(f"topic {self.topic} does not exist")
            tps = [TopicPartition(self.topic, p) for p in sorted(ids)]
            consumer.assign(tps)
            since_ms = self._since_ms()
            found = consumer.offsets_for_times({tp: since_ms for tp in tps})
            ends = consumer.end_offsets(tps)
            for tp in tps:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])
            while not self._stop.is_set():
                records = self._decode(consumer.poll(timeout_ms=self.poll_ms))
                if records:
                    run_on_loop(self._loop, self._stop, functools.partial(self.apply, records))
                if not self.ready.is_set() and all(consumer.position(tp) >= ends[tp] for tp in tps):
                    log.info("%s rebuilt: caught up", self._thread.name)
                    self.ready.set()
        finally:
            consumer.close()


class Materialiser(ConsumerThread):
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
        super().__init__("materialiser", loop)

    def _consume(self) -> None:
        consumer = KafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",   # the scorer writes in transactions: never an aborted one
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
        run_on_loop(self._loop, self._stop, lambda: self._apply(changes))

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
