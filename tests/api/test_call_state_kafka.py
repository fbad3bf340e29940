"""The call-state check end to end on the real broker: raw call_state events into ingest (a real
subprocess), pseudonymised records on fraudradar.calls, answers from the real API server.

A spoofed bank call is risky at once and clears after the window; an announced bank call from
the bank's own route is not; a long call with a known contact is "in call, no risk"; nothing
names the counterpart (answers, topics, logs, metrics); the state is rebuilt after a restart.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from services.common import topics
from services.common.records import decode_audit
from services.common.topics import ensure_topics
from tests.api.conftest import ApiServer, ScorerOutput, eventually, start_api
from tests.support.kafka_io import header, read_all
from tests.support.privacy import find_plaintext, identifier_forms
from tests.support.procs import start_service, stop_service

pytestmark = pytest.mark.kafka

BANK_A, BANK_B = "+31201110001", "+31302220002"
SPOOFER = "+442079460000"
ALL_NUMBERS: set[str] = {BANK_A, BANK_B, SPOOFER}


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def subscriber() -> str:
    number = f"+316{uuid.uuid4().int % 10**8:08d}"
    ALL_NUMBERS.add(number)
    return number


@dataclass
class Rig:
    api: ApiServer
    bootstrap: str
    prefix: str
    tmp: Path
    producer: KafkaProducer
    scorer: ScorerOutput
    seq: list[int] = field(default_factory=lambda: [0])

    def send(self, a: str, b: str, state: str, *, call_id: str, at: datetime | None = None,
             direction: str = "mt", **extra: Any) -> None:
        self.seq[0] += 1
        event_id = f"cs-{self.seq[0]}"
        call_state = {"call_id": call_id, "state": state, **extra}
        doc = {"event_id": event_id, "operator": "kpn", "type": "call_state",
               "occurred_at": iso(at or datetime.now(UTC)), "a_number": a, "b_number": b,
               "direction": direction, "call_state": call_state}
        # keyed by the subscriber, as a telco keys its events: one raw partition keeps one
        # subscriber's call events in order (a known contact is known only after its earlier call)
        self.producer.send(self.prefix + topics.RAW, key=f"kpn:{b}".encode(), value=json.dumps(doc).encode())
        self.producer.flush(10)

    def check(self, phone: str, window: int = 15, client: str = "bank-a") -> httpx.Response:
        return httpx.post(self.api.base + "/v1/call-state:check", headers=self.api.auth(client),
                          json={"phoneNumber": phone, "windowMinutes": window}, timeout=10)

    def answer_when(self, phone: str, status: str, window: int = 15) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            r = self.check(phone, window)
            if r.status_code == 200 and r.json()["status"] == status:
                return dict(r.json())
            return None

        return dict(eventually(ready, timeout_s=30))


@pytest.fixture(scope="module")
def rig(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("calls")
    prefix = f"c{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=3)
    protected = tmp / "protected.csv"
    protected.write_text(f"number,owner\n{BANK_A},bank-a\n{BANK_B},bank-b\n")
    env = {"FRAUDRADAR_BOOTSTRAP": kafka_bootstrap, "FRAUDRADAR_TOPIC_PREFIX": prefix, "FRAUDRADAR_HTTP_PORT": "0",
           "FRAUDRADAR_PROTECTED_NUMBERS_FILE": str(protected), "FRAUDRADAR_COMMIT_INTERVAL_S": "0.2"}
    ingest = start_service(["ingest"], env, tmp / "ingest.log")
    api, thread = start_api(tmp, kafka_bootstrap, prefix, protected_numbers_file=str(protected))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=0)
    scorer = ScorerOutput(kafka_bootstrap, prefix)
    try:
        yield Rig(api, kafka_bootstrap, prefix, tmp, producer, scorer)
    finally:
        producer.close(5)
        scorer.close()
        thread.stop()
        assert stop_service(ingest) == 0, (tmp / "ingest.log").read_text()[-3000:]


def no_counterpart(rig: Rig, body: str, *counterparts: str) -> None:
    for number in counterparts:
        assert number not in body and number.lstrip("+") not in body
        assert rig.api.pseudonym(number) not in body


def test_spoofed_bank_call_is_risky_at_once_and_clears_after_the_window(rig: Rig) -> None:
    victim = subscriber()
    rig.send(SPOOFER, victim, "started", call_id="spoof-1", presented_cli=BANK_A, international=True)
    answer = rig.answer_when(victim, "IN_CALL")
    assert answer["riskLevel"] == "critical"
    assert [r["code"] for r in answer["reasons"]] == ["BANK_CLI_SPOOF"]
    rig.send(SPOOFER, victim, "answered", call_id="spoof-1", presented_cli=BANK_A, international=True)
    eventually(lambda: rig.check(victim).json().get("answered") is True)
    no_counterpart(rig, rig.check(victim).text, SPOOFER, BANK_A)

    # ended three minutes ago (event time): still within a 5-minute window, not within a 2-minute one
    gone = subscriber()
    three_min_ago = datetime.now(UTC) - timedelta(minutes=3)
    rig.send(SPOOFER, gone, "started", call_id="spoof-2", at=three_min_ago - timedelta(minutes=20),
             presented_cli=BANK_A, international=True)
    rig.send(SPOOFER, gone, "ended", call_id="spoof-2", at=three_min_ago, presented_cli=BANK_A,
             international=True, duration_s=1190)
    recent = rig.answer_when(gone, "RECENT_CALL", window=5)
    assert recent["riskLevel"] == "critical" and recent["durationSeconds"] == 1190 and "endedAt" in recent
    assert rig.check(gone, window=2).json() == {"status": "NO_CALL", "riskLevel": "none", "reasons": []}


def test_announced_bank_call_from_its_own_route_is_not_risky(rig: Rig) -> None:
    customer = subscriber()
    r = httpx.post(rig.api.base + "/verified-caller/v0.1/pre-announce", headers=rig.api.auth("bank-a"),
                   json={"callingParticipant": BANK_A, "calledParticipant": customer, "timeToLive": 120}, timeout=10)
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"preAnnouncementId", "expiresAt"}
    rig.send(BANK_A, customer, "started", call_id="bank-1")
    answer = rig.answer_when(customer, "IN_CALL")
    assert answer["riskLevel"] == "none" and answer["reasons"] == []


def test_unannounced_bank_cli_from_an_international_route_is_a_spoof_even_if_another_customer_was_announced(
        rig: Rig) -> None:
    announced, other = subscriber(), subscriber()
    r = httpx.post(rig.api.base + "/verified-caller/v0.1/pre-announce", headers=rig.api.auth("bank-b"),
                   json={"callingParticipant": BANK_B, "calledParticipant": announced}, timeout=10)
    assert r.status_code == 201, r.text
    rig.send(SPOOFER, other, "started", call_id="spoof-3", presented_cli=BANK_B, international=True)
    assert rig.answer_when(other, "IN_CALL")["riskLevel"] == "critical"


def test_long_call_with_a_known_contact_is_in_call_with_no_risk(rig: Rig) -> None:
    me, friend = subscriber(), subscriber()
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    rig.send(friend, me, "started", call_id="f-1", at=an_hour_ago)
    rig.send(friend, me, "ended", call_id="f-1", at=an_hour_ago + timedelta(minutes=2), duration_s=110)
    rig.send(friend, me, "started", call_id="f-2", at=datetime.now(UTC) - timedelta(minutes=40))
    rig.send(friend, me, "answered", call_id="f-2", at=datetime.now(UTC) - timedelta(minutes=40))
    answer = rig.answer_when(me, "IN_CALL")
    assert answer["riskLevel"] == "none" and answer["durationSeconds"] >= 39 * 60
    metrics = httpx.get(rig.api.ops + "/metrics", timeout=10).text
    assert 'counterpart_class="known_contact"' in metrics


def test_forwarded_call_from_abroad_is_not_risky_but_the_same_without_forwarding_is(rig: Rig) -> None:
    a, b, caller = subscriber(), subscriber(), subscriber()
    rig.send(caller, a, "started", call_id="fw-1", international=True, forwarded=True)
    rig.send(caller, b, "started", call_id="fw-2", international=True)
    assert rig.answer_when(a, "IN_CALL")["riskLevel"] == "none"
    answer = rig.answer_when(b, "IN_CALL")
    assert answer["riskLevel"] == "high" and [r["code"] for r in answer["reasons"]] == ["INTERNATIONAL_DOMESTIC_CLI"]


def test_flagged_counterpart(rig: Rig) -> None:
    me, fraudster = subscriber(), subscriber()
    rig.scorer.risk(fraudster, level="high")
    rig.scorer.flush()
    eventually(lambda: rig.api.service.effective(f"number:{rig.api.pseudonym(fraudster)}", time.time())[0] == "high")
    rig.send(fraudster, me, "started", call_id="fl-1")
    answer = rig.answer_when(me, "IN_CALL")
    assert answer["riskLevel"] == "high" and [r["code"] for r in answer["reasons"]] == ["FLAGGED_COUNTERPART"]
    no_counterpart(rig, json.dumps(answer), fraudster)


def test_scopes_and_ownership(rig: Rig) -> None:
    customer = subscriber()
    r = httpx.post(rig.api.base + "/verified-caller/v0.1/pre-announce", headers=rig.api.auth("bank-a"),
                   json={"callingParticipant": BANK_B, "calledParticipant": customer}, timeout=10)
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"   # bank-b's number, not bank-a's
    r = rig.check(customer, client="platform-a")
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"
    r = httpx.post(rig.api.base + "/v1/call-state:check", json={"phoneNumber": customer}, timeout=10)
    assert r.status_code == 401
    r = httpx.post(rig.api.base + "/v1/call-state:check", headers=rig.api.auth("bank-a"),
                   json={"phoneNumber": "0612345678"}, timeout=10)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_ARGUMENT"
    r = rig.check(customer, window=100)
    assert r.status_code == 400 and r.json()["code"] == "OUT_OF_RANGE"


def test_checks_are_budgeted_and_audited(rig: Rig) -> None:
    numbers = [subscriber() for _ in range(6)]

    def check(number: str) -> httpx.Response:
        while True:   # bank-tight's request rate is 1/s (burst 3): wait out TOO_MANY_REQUESTS, not the budget
            r = rig.check(number, client="bank-tight")
            if r.status_code != 429 or r.json()["code"] != "TOO_MANY_REQUESTS":
                return r
            time.sleep(float(r.headers["retry-after"]))

    codes = [check(n).status_code for n in numbers[:5]]
    last = check(numbers[5])
    assert codes == [200] * 5
    assert last.status_code == 429 and last.json()["code"] == "QUOTA_EXCEEDED"   # 6 distinct > budget 5
    wanted = {rig.api.pseudonym(n) for n in numbers[:5]}
    audit = read_all(rig.bootstrap, rig.prefix + topics.AUDIT, expect_at_least=5)
    found = {a.entity for a in map(decode_audit, (m.value for m in audit))
             if a.action == "call-state:check" and a.partner == "bank-tight"}
    assert wanted <= found


def test_bad_call_state_goes_to_the_dlq_with_its_reason(rig: Rig) -> None:
    rig.send(SPOOFER, subscriber(), "ringing", call_id="bad-1")
    dlq = read_all(rig.bootstrap, rig.prefix + topics.DLQ, expect_at_least=1)
    assert "INVALID_CALL_STATE" in [header(r, "reason") for r in dlq]


def test_no_plaintext_number_on_the_calls_topic_in_logs_or_metrics_and_no_counterpart_in_metrics(rig: Rig) -> None:
    victim = subscriber()
    rig.send(SPOOFER, victim, "started", call_id="priv-1", presented_cli=BANK_A, international=True)
    rig.answer_when(victim, "IN_CALL")
    records = read_all(rig.bootstrap, rig.prefix + topics.CALLS, expect_at_least=1)
    assert records
    forms = identifier_forms(ALL_NUMBERS)
    blobs = [r.value for r in records] + [r.key for r in records if r.key]
    blobs.append((rig.tmp / "ingest.log").read_bytes())
    metrics = httpx.get(rig.api.ops + "/metrics", timeout=10).text
    blobs.append(metrics.encode())
    assert find_plaintext(blobs, forms) == []
    for number in (SPOOFER, BANK_A, victim):
        assert rig.api.pseudonym(number) not in metrics


def test_push_a_watched_customer_in_a_risky_call_and_the_spoofed_bank_signed(rig: Rig) -> None:
    from tests.api.test_webhooks_feed import Receiver

    watched, unwatched, safe = subscriber(), subscriber(), subscriber()
    customer_hook, owner_hook = Receiver(), Receiver()
    try:
        with rig.api.client() as c:
            bank_a, bank_b = rig.api.auth("bank-a"), rig.api.auth("bank-b")
            for phone, ref in ((watched, "cust-7"), (safe, "cust-8")):
                r = c.post("/v1/watchlist/entries", json={"phoneNumber": phone, "reference": ref}, headers=bank_a)
                assert r.status_code == 201, r.text
            r = c.post("/v1/webhooks", json={"url": customer_hook.url, "events": ["call.risky"]}, headers=bank_a)
            assert r.status_code == 201, r.text
            customer_hook.secret = r.json()["secret"]
            r = c.post("/v1/webhooks", json={"url": owner_hook.url, "events": ["call.cli_spoofed"]},
                       headers=bank_b)
            assert r.status_code == 201, r.text
            owner_hook.secret = r.json()["secret"]
        eventually(lambda: len(rig.api.service.dispatcher._workers) >= 2)
        rig.send(SPOOFER, watched, "started", call_id="push-1", presented_cli=BANK_B, international=True)
        rig.send(SPOOFER, unwatched, "started", call_id="push-2", presented_cli=BANK_B, international=True)
        rig.send(subscriber(), safe, "started", call_id="push-3")                      # not risky: no push
        eventually(lambda: len(customer_hook.verified) >= 1 and len(owner_hook.verified) >= 2, timeout_s=30)
        [risky] = customer_hook.verified                  # only the watched customer, verified signature
        assert risky["type"] == "call.risky"
        assert risky["data"]["reference"] == "cust-7" and risky["data"]["riskLevel"] == "critical"
        assert [r["code"] for r in risky["data"]["reasons"]] == ["BANK_CLI_SPOOF"]
        spoofed = [v for v in owner_hook.verified if v["type"] == "call.cli_spoofed"]
        assert len(spoofed) == 2 and {v["data"]["presentedNumber"] for v in spoofed} == {BANK_B}
        assert customer_hook.bad_signatures == 0 and owner_hook.bad_signatures == 0
        bodies = " ".join(body.decode() for _, body in customer_hook.requests + owner_hook.requests)
        no_counterpart(rig, bodies, SPOOFER, watched, unwatched)   # nor the victim, to the owning bank
    finally:
        customer_hook.close()
        owner_hook.close()


def test_call_state_is_rebuilt_after_a_restart_and_announcements_reach_every_replica(rig: Rig) -> None:
    victim, customer = subscriber(), subscriber()
    rig.send(SPOOFER, victim, "started", call_id="restart-1", presented_cli=BANK_A, international=True)
    rig.answer_when(victim, "IN_CALL")
    r = httpx.post(rig.api.base + "/verified-caller/v0.1/pre-announce", headers=rig.api.auth("bank-a"),
                   json={"callingParticipant": BANK_A, "calledParticipant": customer, "timeToLive": 300}, timeout=10)
    assert r.status_code == 201, r.text
    # a new API process (another replica, or this one restarted) starts with no state in memory
    (rig.tmp / "second").mkdir()
    api2, thread2 = start_api(rig.tmp / "second", rig.bootstrap, rig.prefix,
                              protected_numbers_file=str(rig.tmp / "protected.csv"))
    try:
        def answer(phone: str) -> dict[str, Any] | None:
            r = httpx.post(api2.base + "/v1/call-state:check", headers=api2.auth("bank-a"),
                           json={"phoneNumber": phone}, timeout=10)
            return dict(r.json()) if r.status_code == 200 and r.json()["status"] == "IN_CALL" else None

        rebuilt = eventually(lambda: answer(victim), timeout_s=30)
        assert rebuilt["riskLevel"] == "critical"
        # announced on the first replica, honoured by the second: the bank's call (here routed
        # from abroad, which alone would make it a spoof) is not risky
        rig.send(BANK_A, customer, "started", call_id="announced-abroad", international=True)
        assert eventually(lambda: answer(customer), timeout_s=30)["riskLevel"] == "none"
    finally:
        thread2.stop()


def test_a_call_step_in_an_aborted_transaction_never_reaches_the_call_state(rig: Rig) -> None:
    # ingest writes fraudradar.calls in transactions: a step of an aborted one (a crash between
    # produce and commit; the raw event comes again) is not a call, read committed only
    from services.common.call_records import CallState, encode_call_state

    ghost, real, other = subscriber(), subscriber(), subscriber()
    now = int(time.time() * 1000)

    def step(who: str, call: str) -> bytes:
        sub = rig.api.pseudonym(who)
        return encode_call_state(CallState(call=call, subscriber=sub, counterpart=rig.api.pseudonym(other),
                                           state="started", direction="mt", operator="kpn", occurred_ms=now,
                                           ingested_ms=now, key_id="k"))

    producer = KafkaProducer(bootstrap_servers=rig.bootstrap, transactional_id=f"ghost-{uuid.uuid4().hex[:8]}")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(rig.prefix + topics.CALLS, key=rig.api.pseudonym(ghost).encode(), value=step(ghost, "ghost-1"))
        producer.flush(10)
        producer.abort_transaction()
        producer.begin_transaction()          # the control: a committed step after it is applied
        producer.send(rig.prefix + topics.CALLS, key=rig.api.pseudonym(ghost).encode(), value=step(real, "real-1"))
        producer.commit_transaction()
    finally:
        producer.close(5)
    rig.answer_when(real, "IN_CALL")
    r = rig.check(ghost)
    assert r.status_code == 200 and r.json()["status"] == "NO_CALL"
