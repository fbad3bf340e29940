"""Ingest's HTTP side: batch push for telcos without Kafka, probes and metrics; the DLQ limit."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import httpx
import orjson
import pytest

from services.common import topics
from tests.support.kafka_io import header, produce_all, read_all
from tests.support.procs import start_service, stop_service, wait_for
from tests.support.streams import mixed_stream

pytestmark = pytest.mark.kafka


def _http_port(log: Path) -> int | None:
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "ingest started":
            return int(entry["http_port"])
    return None


@pytest.fixture()
def ingest(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    tokens = tmp_path / "push-tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        f"  - operator: kpn\n    sha256: {hashlib.sha256(b'kpn-secret-token').hexdigest()}\n"
        f"  - operator: odido\n    sha256: {hashlib.sha256(b'odido-secret-token').hexdigest()}\n"
    )
    log = tmp_path / "ingest.log"
    env = {"FRAUDRADAR_BOOTSTRAP": kafka_bootstrap, "FRAUDRADAR_TOPIC_PREFIX": topic_prefix,
           "FRAUDRADAR_HTTP_PORT": "0", "FRAUDRADAR_PUSH_TOKENS_FILE": str(tokens),
           "FRAUDRADAR_DLQ_MAX_CONSECUTIVE": "50", "FRAUDRADAR_DLQ_EXIT_DELAY_S": "3"}
    proc = start_service(["ingest"], env, log)
    assert wait_for(lambda: _http_port(log) is not None, 60), log.read_text()[-2000:]
    yield proc, f"http://127.0.0.1:{_http_port(log)}", log
    stop_service(proc)


def test_batch_push_writes_valid_events_and_reports_the_rest(ingest, kafka_bootstrap: str, topic_prefix: str) -> None:
    _proc, base, _log = ingest
    stream = mixed_stream(40, bad_ratio=0.3, seed=5)
    events: list[object] = []
    expected = list(stream.expected)
    for i, (_, raw) in enumerate(stream.records):
        try:
            ev = orjson.loads(raw)
        except orjson.JSONDecodeError:  # inside a JSON body, unparseable text can only be a string
            ev, expected[i] = raw.decode(), "NOT_AN_OBJECT"
        if isinstance(ev, dict) and "operator" in ev:
            ev["operator"] = "kpn"
        events.append(ev)
    first_good = orjson.loads(stream.records[expected.index(None)][1])
    events.append({**first_good, "operator": "odido", "event_id": "foreign"})
    body = {"events": events}
    unauth = httpx.post(f"{base}/v1/events:batch", json=body, timeout=30)
    assert unauth.status_code == 401 and unauth.json()["code"] == "UNAUTHENTICATED"
    bad_token = httpx.post(f"{base}/v1/events:batch", json=body, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert bad_token.status_code == 401

    r = httpx.post(f"{base}/v1/events:batch", json=body, timeout=30,
                   headers={"Authorization": "Bearer kpn-secret-token", "x-correlator": "abc-123"})
    assert r.status_code == 200, r.text
    assert r.headers["x-correlator"] == "abc-123"
    result = r.json()
    expected_bad = {i for i, reason in enumerate(expected) if reason is not None}
    rejected = {x["index"]: x["reason"] for x in result["rejected"]}
    assert rejected.pop(len(events) - 1) == "OPERATOR_MISMATCH"
    assert set(rejected) == expected_bad
    assert rejected == {i: expected[i] for i in expected_bad}
    assert result["accepted"] == len(events) - 1 - len(expected_bad)

    written = read_all(kafka_bootstrap, topic_prefix + topics.RAW, expect_at_least=result["accepted"])
    assert len(written) == result["accepted"]
    assert all(rec.key.startswith(b"kpn:") for rec in written)

    for payload, status in ((b"{not json", 400), (b'{"events": []}', 400),
                            (orjson.dumps({"events": [{}] * 1001}), 400)):
        resp = httpx.post(f"{base}/v1/events:batch", content=payload, timeout=30,
                          headers={"Authorization": "Bearer kpn-secret-token", "Content-Type": "application/json"})
        assert resp.status_code == status
        assert set(resp.json()) == {"status", "code", "message"}


def test_probes_and_metrics(ingest, kafka_bootstrap: str, topic_prefix: str) -> None:
    _proc, base, _log = ingest
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    stream = mixed_stream(300, bad_ratio=0.1, seed=6)
    produce_all(kafka_bootstrap, topic_prefix + topics.RAW, stream.records)
    assert wait_for(lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200, 60)

    def dlq_metric() -> float:
        text = httpx.get(f"{base}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("fraudradar_dlq_total{"))

    n_bad = sum(r is not None for r in stream.expected)
    assert wait_for(lambda: dlq_metric() == n_bad, 60)
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    for name in ("fraudradar_ingest_events_total", "fraudradar_ingest_views_total", "fraudradar_consumer_lag",
                 "fraudradar_consumer_commits_total", "fraudradar_batch_duration_seconds_bucket"):
        assert name in metrics
    assert "+316" not in metrics and "pseudonym" not in metrics


def test_dlq_limit_stops_the_consumer_without_committing(ingest, kafka_bootstrap: str, topic_prefix: str) -> None:
    proc, base, log = ingest
    produce_all(kafka_bootstrap, topic_prefix + topics.RAW, [(None, b"garbage %d" % i) for i in range(200)])

    def tripped_metric_visible() -> bool:
        try:
            text = httpx.get(f"{base}/metrics", timeout=2).text
        except httpx.HTTPError:
            return False
        return 'fraudradar_dlq_limit_tripped_total{service="ingest"} 1.0' in text

    # stays scrapeable after tripping, not ready, then exits 4
    assert wait_for(tripped_metric_visible, 60, interval_s=0.1)
    assert httpx.get(f"{base}/readyz", timeout=2).status_code == 503
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.returncode == 4, log.read_text()[-2000:]
    assert "DLQ limit tripped" in log.read_text()
    dlq = read_all(kafka_bootstrap, topic_prefix + topics.DLQ, expect_at_least=1, timeout_s=10)
    assert 0 < len(dlq) <= 200 and all(header(r, "reason") == "INVALID_JSON" for r in dlq)
    # The consumer stopped; the bad offsets were not committed, so a fixed deploy sees them again:
    # per partition, the committed offset is at or before the first record that was neither
    # processed nor dead-lettered (the process has exited, so the DLQ read above is complete).
    from kafka import KafkaConsumer, TopicPartition

    dead = {(int(header(r, "fraudradar.source_partition") or -1), int(header(r, "fraudradar.source_offset") or -1))
            for r in dlq}
    assert len(dead) == len(dlq)
    c = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id="fraudradar-ingest", enable_auto_commit=False)
    tps = [TopicPartition(topic_prefix + topics.RAW, p) for p in range(3)]
    ends = c.end_offsets(tps)
    committed = {tp.partition: c.committed(tp) or 0 for tp in tps}
    c.close()
    unhandled = {tp.partition: [o for o in range(ends[tp]) if (tp.partition, o) not in dead] for tp in tps}
    assert any(unhandled.values()), "the limit tripped after every record was dead-lettered"
    for partition, offsets in unhandled.items():
        first_unhandled = offsets[0] if offsets else ends[TopicPartition(topic_prefix + topics.RAW, partition)]
        assert committed[partition] <= first_unhandled, (partition, committed, first_unhandled)
