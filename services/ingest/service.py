"""``fraudradar ingest``: raw telco events → pseudonymised views, bad input → DLQ.

A consumer group on ``telco.events``. Per record: ``IngestPipeline.process`` (decode,
bounds, dedupe, pseudonymise); views go to ``fraudradar.numbers`` / ``fraudradar.devices``
keyed by pseudonym, rejects to ``fraudradar.dlq`` with a reason header, behind a DLQ limit.
Exactly-once (``exactly_once``, the default): a commit's views, dead letters and consumed
offsets are one Kafka transaction (the shared loop's ``StreamConfig.exactly_once``), so a crash
between produce and commit leaves nothing a ``read_committed`` reader (the scorer) sees, and the
raw events come again to whoever owns their partition; the per-process dedupe stays as a
defence (an operator resending an event) and forgets the events of a transaction that did not
commit (``on_aborted``). Without it, offsets are committed only after every
output is acknowledged (at least once: such a crash redelivers views).

Also serves ``POST /v1/events:batch`` for telcos without Kafka: authenticated per operator,
validated with the same decoder, valid events written raw to ``telco.events``, the rest
answered with their reasons (nothing is dropped silently: the caller gets every rejection).
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import hmac
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml
from kafka import KafkaProducer
from prometheus_client import Counter
from pydantic import Field

from services.common import topics
from services.common.call_records import encode_call_state
from services.common.config import CommonSettings
from services.common.exceptions import FraudradarError
from services.common.http import Health, ServiceHttp
from services.common.logs import setup_logging
from services.common.protected_numbers import ProtectedNumbers
from services.common.records import View, encode_view_bundle
from services.common.stream import (
    CommitPolicy,
    DlqLimit,
    DlqLimitExceeded,
    OutputSink,
    Record,
    RejoinStalled,
    StreamConfig,
    StreamRunner,
    murmur2_partition,
)
from services.ingest.call_transform import CallTransformer
from services.ingest.decode import Rejected
from services.ingest.pipeline import IngestLimits, IngestPipeline
from services.ingest.transform import Transformer

log = logging.getLogger("fraudradar.ingest")

EVENTS = Counter("fraudradar_ingest_events_total", "Raw events by outcome", ["outcome"])
VIEWS = Counter("fraudradar_ingest_views_total", "Views produced", ["entity_type"])
CALL_STEPS = Counter("fraudradar_ingest_call_states_total", "Call-state records produced to fraudradar.calls",
                     ["state"])
LATE = Counter("fraudradar_ingest_late_events_total", "Events older than the lateness bound (forwarded, flagged)")
FUTURE = Counter("fraudradar_ingest_future_events_total", "Events beyond the future bound (dead-lettered)")
STRIPPED = Counter("fraudradar_ingest_content_stripped_total", "Events that carried message content (removed)")
PUSH = Counter("fraudradar_ingest_push_requests_total", "HTTP batch push requests", ["status"])

MAX_PUSH_EVENTS = 1000
MAX_BUNDLE_VIEWS = 500  # ~225 KB per record: under Kafka's default 1 MB message limit


class IngestSettings(CommonSettings):
    group_id: str = "fraudradar-ingest"
    max_event_bytes: int = Field(64 * 1024, description="larger raw events are dead-lettered TOO_LARGE")
    max_future_s: int = Field(300, description="events further ahead of the wall clock go to the DLQ")
    max_lateness_s: int = Field(6 * 3600, description="older events are forwarded flagged late and counted")
    dedupe_window: int = Field(500_000, description="event ids remembered per process for duplicate detection")
    dlq_max_ratio: float = Field(0.5, description="DLQ limit: stop above this invalid share (per partition)")
    dlq_max_consecutive: int = Field(1000, description="DLQ limit: stop after this many invalid in a row")
    commit_interval_s: float = Field(1.0, description="commit offsets at most this often")
    push_tokens_file: str | None = Field(None, description="YAML: tokens: [{operator, sha256}] for batch push")
    instance_id: str | None = Field(None, description="static group membership id (e.g. the pod name)")
    dlq_exit_delay_s: float = Field(60.0, description="after the DLQ limit trips, keep /metrics up this long "
                                                      "(so Prometheus sees it) before exiting with code 4")
    operator_regions: dict[str, str] = Field(default_factory=dict, description="operator -> ISO region")
    protected_numbers_file: str | None = Field(None, description="CSV number,owner: banks' caller numbers and "
                                                                 "do-not-originate numbers (call_state CLI classes)")
    exactly_once: bool = Field(True, description="each commit one Kafka transaction: views, dead letters and "
                                                 "offsets (docs/architecture.md)")
    transaction_timeout_ms: int = Field(
        20_000, ge=1000, description="the broker aborts a commit transaction left open this long (a frozen or "
                                     "dead replica; until then read_committed readers wait at its first record); "
                                     "above commit_interval_s plus a batch and a commit's flush")


class IngestProcessor:
    """The ingest step of the stream: one raw record in, its views or a dead letter out."""

    def __init__(self, settings: IngestSettings, pipeline: IngestPipeline) -> None:
        self.pipeline = pipeline
        self.numbers_topic = settings.topic(topics.NUMBERS)
        self.devices_topic = settings.topic(topics.DEVICES)
        self.calls_topic = settings.topic(topics.CALLS)
        self._ok, self._dlq, self._dup = (EVENTS.labels(o) for o in ("ok", "dlq", "duplicate"))
        self._number_views, self._device_views = VIEWS.labels("number"), VIEWS.labels("device")

    def process(self, records: list[Record], sink: OutputSink) -> None:
        now_ms = int(time.time() * 1000)
        numbers_topic, devices_topic = self.numbers_topic, self.devices_topic
        n_numbers, n_devices = sink.partitions(numbers_topic), sink.partitions(devices_topic)
        # Views are gathered per destination partition and written as bundles (records.py).
        bundles: dict[tuple[str, int], list[View]] = {}
        n_ok = n_dlq = n_dup = n_late = n_future = n_stripped = n_number_views = n_device_views = 0
        for record in records:
            result = self.pipeline.process(record.value, now_ms)  # type: ignore[arg-type]
            if result.content_stripped:
                n_stripped += 1
            if result.reason is not None:
                if result.reason == "FUTURE_EVENT":
                    n_future += 1
                n_dlq += 1
                sink.dead_letter(record, result.reason, result.detail)
                continue
            sink.ok(record)
            if result.duplicate:
                n_dup += 1
                continue
            if result.late:
                n_late += 1
            n_ok += 1
            if result.call is not None:
                # keyed by the subscriber: every step of a subscriber's calls on one partition, in order
                sink.send(self.calls_topic, result.call.subscriber.encode(), encode_call_state(result.call))
                CALL_STEPS.labels(result.call.state).inc()
                continue
            for view in result.views:
                key = view.entity.encode()
                if view.entity_type == "number":
                    dest = (numbers_topic, murmur2_partition(key, n_numbers))
                    n_number_views += 1
                else:
                    dest = (devices_topic, murmur2_partition(key, n_devices))
                    n_device_views += 1
                bundle = bundles.get(dest)
                if bundle is None:
                    bundles[dest] = [view]
                else:
                    bundle.append(view)
        for (topic, partition), views in bundles.items():
            for start in range(0, len(views), MAX_BUNDLE_VIEWS):
                chunk = views[start:start + MAX_BUNDLE_VIEWS]
                sink.send(topic, None, encode_view_bundle(chunk),
                          [("fraudradar.format", b"view-bundle-v1"), ("fraudradar.views", str(len(chunk)).encode())],
                          partition=partition)
        # metrics once per batch, not per event (a labelled inc costs microseconds)
        self._ok.inc(n_ok)
        self._dlq.inc(n_dlq)
        self._dup.inc(n_dup)
        LATE.inc(n_late)
        FUTURE.inc(n_future)
        STRIPPED.inc(n_stripped)
        self._number_views.inc(n_number_views)
        self._device_views.inc(n_device_views)

    def on_assigned(self, partitions: set[Any]) -> None:
        return None

    def on_revoked(self, partitions: set[Any]) -> None:
        return None

    def on_aborted(self, partitions: set[Any]) -> None:
        """A commit's transaction aborted: its events come again from the committed offsets; the
        dedupe window forgets them, else they would be dropped as duplicates (lost)."""
        self.pipeline.duplicates.rollback()

    # a commit step (``CommitStep``): nothing to write; once the commit is durable, the events
    # seen so far stay remembered
    def write(self, sink: OutputSink, generation: int, member: str) -> None:
        return None

    def written(self) -> None:
        self.pipeline.duplicates.commit()


def build_pipeline(settings: IngestSettings) -> IngestPipeline:
    limits = IngestLimits(
        max_bytes=settings.max_event_bytes, max_future_ms=settings.max_future_s * 1000,
        max_lateness_ms=settings.max_lateness_s * 1000, dedupe_window=settings.dedupe_window,
    )
    transformer = Transformer(settings.pseudonymizer(), settings.discloser(), settings.default_region,
                              settings.operator_regions)
    protected = ProtectedNumbers.load(settings.protected_numbers_file, settings.default_region)
    calls = CallTransformer(settings.pseudonymizer(), protected, settings.default_region, settings.operator_regions)
    return IngestPipeline(transformer, limits, calls)


class PushTokens:
    """Operator tokens for the batch push, stored as SHA-256 hashes (tokens are 32+ random bytes)."""

    def __init__(self, entries: list[dict[str, str]]) -> None:
        self._entries = [(e["operator"], bytes.fromhex(e["sha256"])) for e in entries]

    @classmethod
    def load(cls, path: str | None) -> PushTokens:
        if not path:
            return cls([])
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls(list(data.get("tokens", [])))

    def operator_for(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        digest = hashlib.sha256(authorization[7:].strip().encode()).digest()
        for operator, expected in self._entries:
            if hmac.compare_digest(digest, expected):
                return operator
        return None


def _error(status: int, code: str, message: str) -> tuple[int, object, dict[str, str]]:
    PUSH.labels(str(status)).inc()
    return status, {"status": status, "code": code, "message": message}, {}


class BatchPush:
    """``POST /v1/events:batch``: ``{"events": [event, ...]}`` (at most 1000)."""

    def __init__(self, settings: IngestSettings, pipeline: IngestPipeline, producer: Any, tokens: PushTokens) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.producer = producer
        self.tokens = tokens
        self.raw_topic = settings.topic(topics.RAW)

    def __call__(self, body: bytes, headers: dict[str, str]) -> tuple[int, object, dict[str, str]]:
        operator = self.tokens.operator_for(headers.get("authorization"))
        if operator is None:
            return _error(401, "UNAUTHENTICATED", "a valid operator bearer token is required")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "INVALID_ARGUMENT", "body is not valid JSON")
        events = doc.get("events") if isinstance(doc, dict) else None
        if not isinstance(events, list) or not events:
            return _error(400, "INVALID_ARGUMENT", 'body must be {"events": [ ... ]} with at least one event')
        if len(events) > MAX_PUSH_EVENTS:
            return _error(400, "OUT_OF_RANGE", f"at most {MAX_PUSH_EVENTS} events per request")
        rejected: list[dict[str, object]] = []
        futures = []
        now_ms = int(time.time() * 1000)
        for index, event in enumerate(events):
            raw = orjson.dumps(event)
            decoded = self.pipeline.check(raw, now_ms)
            if isinstance(decoded, Rejected):
                rejected.append({"index": index, "reason": decoded.reason, "detail": decoded.detail})
                continue
            if decoded.operator != operator:
                rejected.append({"index": index, "reason": "OPERATOR_MISMATCH",
                                 "detail": "events may only be pushed for the token's own operator"})
                continue
            key = f"{decoded.operator}:{decoded.event_id}".encode()
            futures.append(self.producer.send(self.raw_topic, key=key, value=raw))
        self.producer.flush(timeout=30)
        try:
            for f in futures:
                f.get(timeout=30)
        except Exception:
            return _error(503, "UNAVAILABLE", "events could not be written to Kafka; retry the whole batch")
        PUSH.labels("200").inc()
        return 200, {"accepted": len(futures), "rejected": rejected}, {}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http-port", type=int, help="port of /metrics, /healthz, /readyz and the batch push")
    args = parser.parse_args(argv)
    settings = IngestSettings()
    if args.http_port is not None:
        settings = settings.model_copy(update={"http_port": args.http_port})
    setup_logging("ingest", settings.log_level)
    faulthandler.register(signal.SIGUSR1)   # `kill -USR1 <pid>`: every thread's stack to stderr
    try:
        pipeline = build_pipeline(settings)
        config = StreamConfig(
            service="ingest", group_id=settings.group_id, topics=[settings.topic(topics.RAW)],
            dlq_topic=settings.topic(topics.DLQ), commit=CommitPolicy(settings.commit_interval_s),
            dlq_limit=DlqLimit(max_invalid_ratio=settings.dlq_max_ratio,
                               max_consecutive=settings.dlq_max_consecutive),
            instance_id=settings.instance_id,
            exactly_once=settings.exactly_once, transaction_timeout_ms=settings.transaction_timeout_ms,
            transactional_id=f"fraudradar-ingest-{settings.instance_id}" if settings.instance_id else None,
        )
        health = Health()
        processor = IngestProcessor(settings, pipeline)
        runner = StreamRunner(settings, config, processor, health, commit_steps=[processor])
        # the batch push writes raw events outside the loop's transactions: its own producer
        push_producer = (KafkaProducer(**settings.kafka_config(), client_id="fraudradar-ingest-push", acks="all")
                         if settings.exactly_once else runner.producer)
    except FraudradarError as exc:
        log.error("cannot start ingest", extra={"error": str(exc)})
        print(f"fraudradar ingest: {exc}", file=sys.stderr)
        return 2
    http = ServiceHttp(settings.http_host, settings.http_port, health)
    tokens = PushTokens.load(settings.push_tokens_file)
    http.routes[("POST", "/v1/events:batch")] = BatchPush(settings, pipeline, push_producer, tokens)
    http.start()
    runner.install_signal_handlers()
    log.info("ingest started", extra={"http_port": http.port, "topics": config.topics})
    try:
        runner.run()
    except RejoinStalled:
        return 3                      # logged by the runner; the supervisor restarts the process
    except DlqLimitExceeded as exc:
        from services.common.metrics import DLQ_LIMIT_TRIPPED

        DLQ_LIMIT_TRIPPED.labels("ingest").inc()
        health.set_ready(False, "DLQ limit tripped")
        log.error("DLQ limit tripped; stopping without committing", extra={"error": str(exc)})
        # Consuming has stopped; stay scrapeable for a while so the alert rule sees the counter.
        runner.stop_event.wait(settings.dlq_exit_delay_s)
        return 4
    finally:
        http.stop()
        if push_producer is not runner.producer:
            push_producer.close(timeout=10)
    return 0
