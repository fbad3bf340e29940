"""Audit records on the real broker: N lookups make exactly N records; when Kafka stops
acknowledging them the API says so (metric, /readyz 503, lookups refused) within
``FRAUDRADAR_AUDIT_STALL_S``, sends the failed records again, and recovers on its own."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from services.common.records import AuditRecord, decode_audit
from services.common.topics import AUDIT, ensure_topics
from tests.api.conftest import ApiServer, eventually, start_api

pytestmark = pytest.mark.kafka


def audit_records(server: ApiServer, correlator_prefix: str, expect: int, timeout_s: float = 15,
                  quiet_s: float | None = None) -> list[AuditRecord]:
    """Every record on the audit topic whose correlator starts with ``correlator_prefix``.

    Reads until ``expect`` records are there, then on for ``quiet_s`` (default: the API's audit
    delivery timeout + 1 s, longer than one resend of an unacknowledged record) and to the end
    offsets at that moment, so a duplicate from a resend is in the result, not after it.
    """
    topic = server.prefix + AUDIT
    quiet = server.settings.audit_delivery_timeout_s + 1.0 if quiet_s is None else quiet_s
    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        found: list[AuditRecord] = []

        def read(batches: dict[TopicPartition, list[object]]) -> None:
            for batch in batches.values():
                for message in batch:
                    record = decode_audit(message.value)  # type: ignore[attr-defined]
                    if (record.correlator or "").startswith(correlator_prefix):
                        found.append(record)

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(found) < expect:
            read(consumer.poll(timeout_ms=300))
        quiet_until = time.monotonic() + quiet
        while time.monotonic() < quiet_until:
            read(consumer.poll(timeout_ms=100))
        ends = consumer.end_offsets(tps)
        end_deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < end_deadline, "the audit topic could not be read to its end"
            read(consumer.poll(timeout_ms=300))
        return found
    finally:
        consumer.close()


def metric(server: ApiServer, line_prefix: str) -> float:
    """The value of the exposition line starting with ``line_prefix``; a missing metric fails
    (a renamed metric must not read as 0)."""
    for line in httpx.get(server.ops + "/metrics").text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line starts with {line_prefix!r}")


def test_n_lookups_n_records_and_a_stalled_audit_trail_is_visible(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"u{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=3)
    api, thread = start_api(
        tmp_path, kafka_bootstrap, prefix, audit_stall_s=1.0, audit_delivery_timeout_s=2.0
    )
    try:
        with api.client() as c:
            headers = api.auth("platform-a")
            # 1. N lookups (single and batch items) -> exactly N records
            for i in range(60):
                r = c.post(
                    "/v1/risk/numbers:lookup",
                    json={"phoneNumber": f"+3161238{i:04d}"},
                    headers={**headers, "x-correlator": f"n-{i}"},
                )
                assert r.status_code == 200
            numbers = [f"+3161239{i:04d}" for i in range(90)]
            r = c.post(
                "/v1/risk/numbers:batch",
                json={"phoneNumbers": numbers[:90]},
                headers={**headers, "x-correlator": "n-batch"},
            )
            assert r.status_code == 200 and len(r.json()["results"]) == 90
            eventually(lambda: api.service.producer.audit_in_flight() == 0)
            records = audit_records(api, "n-", 150)
            assert len(records) == 150
            assert len({r.audit_id for r in records}) == 150
            assert metric(api, "fraudradar_api_audit_records_total{outcome=\"acked\"}") >= 150

            # 2. The audit topic disappears: the next lookup is queued and answered, then the
            # stall shows (gauge, /readyz 503 audit-stalled) and lookups are refused.
            admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            admin.delete_topics([prefix + AUDIT])
            time.sleep(1.0)
            r = c.post(
                "/v1/risk/numbers:lookup",
                json={"phoneNumber": "+31612370001"},
                headers={**headers, "x-correlator": "outage-1"},
            )
            assert r.status_code == 200
            eventually(lambda: c.get("/readyz").status_code == 503, timeout_s=10)
            assert c.get("/readyz").json()["status"] == "audit-stalled"
            refused = c.post(
                "/v1/risk/numbers:lookup",
                json={"phoneNumber": "+31612370002"},
                headers={**headers, "x-correlator": "outage-2"},
            )
            assert refused.status_code == 503 and refused.json()["code"] == "UNAVAILABLE"
            assert metric(api, "fraudradar_api_audit_unacked_seconds") >= 1.0
            eventually(lambda: metric(api, "fraudradar_api_audit_records_total{outcome=\"failed\"}") >= 1, timeout_s=10)

            # 3. The topic is back: the failed record is sent again and the API is ready again.
            ensure_topics(kafka_bootstrap, prefix, partitions=3)
            admin.close()
            eventually(lambda: c.get("/readyz").status_code == 200, timeout_s=40, interval_s=0.2)
            outage = audit_records(api, "outage-", 1)
            assert [r.correlator for r in outage] == ["outage-1"]
            assert metric(api, "fraudradar_api_audit_records_total{outcome=\"dropped\"}") == 0
    finally:
        thread.stop()
