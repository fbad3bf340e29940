"""A call's counterpart first seen by the network today, end to end on the real broker: raw events
into ingest and the scorer (real subprocesses), the scorer's ``fraudradar.first-seen`` records,
the answer from the real API server; the API rebuilds its first-seen index after a restart.

The class is the scorer's knowledge (every event type, durable), not this subscriber's contacts:
a number first seen today by the network is flagged even on its first call to anyone, and a
number the scorer has known for days is not, though no subscriber here ever spoke with it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from services.common import topics
from services.common.first_seen import decode_first_seen
from services.common.topics import ensure_topics
from tests.api.conftest import ApiServer, eventually, start_api
from tests.support.kafka_io import read_all
from tests.support.privacy import find_plaintext, identifier_forms
from tests.support.procs import start_service, stop_service

pytestmark = pytest.mark.kafka

FRESH = f"+316{uuid.uuid4().int % 10**8:08d}"     # first seen by the network a minute ago
OLD = f"+316{uuid.uuid4().int % 10**8:08d}"       # first seen three days ago, active today too
NOW = datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Stack:
    api: ApiServer
    bootstrap: str
    prefix: str
    tmp: Path
    producer: KafkaProducer
    seq: int = 0

    def raw(self, doc: dict[str, Any]) -> None:
        self.seq += 1
        event_id = f"fs-{self.seq}"
        # keyed by the A number: one number's events stay in order through ingest, so the
        # scorer's first view of OLD is the one of three days ago
        self.producer.send(self.prefix + topics.RAW, key=doc["a_number"].encode(),
                           value=json.dumps({"event_id": event_id, "operator": "kpn", **doc}).encode())
        self.producer.flush(10)

    def sms(self, a: str, b: str, at: datetime) -> None:
        self.raw({"type": "sms", "occurred_at": iso(at), "a_number": a, "b_number": b, "sms": {"segments": 1}})

    def call_started(self, a: str, b: str, call_id: str) -> None:
        self.raw({"type": "call_state", "occurred_at": iso(datetime.now(UTC)), "a_number": a, "b_number": b,
                  "direction": "mt", "call_state": {"call_id": call_id, "state": "started"}})


def check(api: ApiServer, phone: str) -> httpx.Response:
    return httpx.post(api.base + "/v1/call-state:check", headers=api.auth("bank-a"),
                      json={"phoneNumber": phone}, timeout=10)


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("first-seen")
    prefix = f"f{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=3)
    env = {"FRAUDRADAR_BOOTSTRAP": kafka_bootstrap, "FRAUDRADAR_TOPIC_PREFIX": prefix, "FRAUDRADAR_HTTP_PORT": "0",
           "FRAUDRADAR_COMMIT_INTERVAL_S": "0.2"}
    ingest = start_service(["ingest"], env, tmp / "ingest.log")
    scorer = start_service(["score", "--http-port", "0"], env, tmp / "scorer.log")
    api, thread = start_api(tmp, kafka_bootstrap, prefix)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=0)
    try:
        stack = Stack(api, kafka_bootstrap, prefix, tmp, producer)
        stack.sms(OLD, "+31687654321", NOW - timedelta(days=3))
        stack.sms(OLD, "+31687654322", NOW - timedelta(minutes=2))
        stack.sms(FRESH, "+31687654323", NOW - timedelta(minutes=1))
        yield stack
    finally:
        producer.close(5)
        thread.stop()
        assert stop_service(scorer) == 0, (tmp / "scorer.log").read_text()[-3000:]
        assert stop_service(ingest) == 0, (tmp / "ingest.log").read_text()[-3000:]


def test_a_counterpart_first_seen_today_is_a_low_reason_and_one_known_for_days_is_not(stack: Stack) -> None:
    fresh_p, old_p = stack.api.pseudonym(FRESH), stack.api.pseudonym(OLD)

    # the scorer tells each number once, with the event time of its first view
    def told() -> dict[str, list[int]] | None:
        seen: dict[str, list[int]] = {}
        for r in read_all(stack.bootstrap, stack.prefix + topics.FIRST_SEEN, expect_at_least=1, timeout_s=10):
            rec = decode_first_seen(r.value)
            assert r.key == rec.number.encode()
            seen.setdefault(rec.number, []).append(rec.first_seen_ms)
        return seen if {fresh_p, old_p} <= set(seen) else None

    seen = eventually(told, timeout_s=90)
    assert len(seen[old_p]) == 1 and abs(seen[old_p][0] - (NOW - timedelta(days=3)).timestamp() * 1000) < 1000
    assert len(seen[fresh_p]) == 1

    victim_fresh = f"+316{uuid.uuid4().int % 10**8:08d}"
    victim_old = f"+316{uuid.uuid4().int % 10**8:08d}"
    stack.call_started(FRESH, victim_fresh, "fs-call-1")
    stack.call_started(OLD, victim_old, "fs-call-2")

    def flagged() -> dict[str, Any] | None:
        r = check(stack.api, victim_fresh)
        return dict(r.json()) if r.status_code == 200 and r.json()["reasons"] else None

    answer = eventually(flagged, timeout_s=30)
    assert answer["status"] == "IN_CALL" and answer["riskLevel"] == "low"
    assert [r["code"] for r in answer["reasons"]] == ["COUNTERPART_FIRST_SEEN_TODAY"]
    for body in (json.dumps(answer), httpx.get(stack.api.ops + "/metrics", timeout=10).text):
        assert FRESH not in body and FRESH.lstrip("+") not in body and fresh_p not in body
    assert 'counterpart_class="first_seen_today"' in httpx.get(stack.api.ops + "/metrics", timeout=10).text

    eventually(lambda: check(stack.api, victim_old).json()["status"] == "IN_CALL", timeout_s=30)

    # a new API process rebuilds the index from the topic's last day before it is ready: its very
    # first answers hold, the number first seen three days ago is no first sighting
    (stack.tmp / "second").mkdir()
    api2, thread2 = start_api(stack.tmp / "second", stack.bootstrap, stack.prefix)
    try:
        again = check(api2, victim_fresh).json()
        assert again["riskLevel"] == "low" and [r["code"] for r in again["reasons"]] == [
            "COUNTERPART_FIRST_SEEN_TODAY"]
        old = check(api2, victim_old).json()
        assert old["status"] == "IN_CALL" and old == {**old, "riskLevel": "none", "reasons": []}
    finally:
        thread2.stop()


def test_no_plaintext_number_on_the_first_seen_topic_in_logs_or_metrics(stack: Stack) -> None:
    def both() -> list[Any] | None:
        records = read_all(stack.bootstrap, stack.prefix + topics.FIRST_SEEN, expect_at_least=1, timeout_s=10)
        told = {decode_first_seen(r.value).number for r in records}
        return records if {stack.api.pseudonym(FRESH), stack.api.pseudonym(OLD)} <= told else None

    records = eventually(both, timeout_s=90)
    blobs = [r.value for r in records] + [r.key for r in records if r.key]
    blobs += [(stack.tmp / name).read_bytes() for name in ("ingest.log", "scorer.log")]
    blobs.append(httpx.get(stack.api.ops + "/metrics", timeout=10).text.encode())
    assert find_plaintext(blobs, identifier_forms({FRESH, OLD})) == []
