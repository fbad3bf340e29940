"""Tokens, number lookups, tiers, "no signal", errors, limits, audit (real broker, real server)."""

from __future__ import annotations

import time

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from services.common.records import decode_audit
from services.common.topics import AUDIT
from tests.api.conftest import SECRETS, ApiServer, ScorerOutput, eventually

pytestmark = pytest.mark.kafka


def test_token_and_jwks(api: ApiServer) -> None:
    r = httpx.post(
        api.base + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("bank-a", SECRETS["bank-a"]),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["purpose"] == "dpv:FraudPreventionAndDetection"
    assert "risk:numbers" in body["scope"].split() and "risk:devices" not in body["scope"].split()
    jwks = httpx.get(api.base + "/oauth2/jwks.json").json()
    assert jwks["keys"][0]["kty"] == "EC" and "d" not in jwks["keys"][0]
    bad = httpx.post(
        api.base + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("bank-a", "wrong-secret-wrong-secret"),
    )
    assert bad.status_code == 401
    assert bad.json()["code"] == "UNAUTHENTICATED" and bad.json()["error"] == "invalid_client"
    too_much = httpx.post(
        api.base + "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "risk:devices"},
        auth=("bank-a", SECRETS["bank-a"]),
    )
    assert too_much.status_code == 400 and too_much.json()["error"] == "invalid_scope"
    # an operator with two purposes must declare one
    two = httpx.post(
        api.base + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("operator-a", SECRETS["operator-a"]),
    )
    assert two.status_code == 400 and "purpose" in two.json()["message"]


def test_no_signal_is_identical_for_unseen_and_level_none(api: ApiServer, scorer: ScorerOutput) -> None:
    scorer.risk("+31612345001", level="none", score=0, sim_changed_at="2024-01-01T00:00:00Z")
    scorer.flush()
    eventually(lambda: api.service.risk.get("number:" + api.pseudonym("+31612345001")))
    with api.client() as c:
        seen = c.post(
            "/v1/risk/numbers:lookup", json={"phoneNumber": "+31612345001"}, headers=api.auth("telco-a")
        )
        unseen = c.post(
            "/v1/risk/numbers:lookup", json={"phoneNumber": "+31612345999"}, headers=api.auth("telco-a")
        )
    assert seen.status_code == unseen.status_code == 200
    assert seen.content == unseen.content == b'{"signal":false,"level":"none"}'


def test_flagged_number_cut_to_tier(api: ApiServer, scorer: ScorerOutput) -> None:
    scorer.risk("+31612345002", level="high", score=83)
    scorer.flush()
    eventually(lambda: api.service.risk.get("number:" + api.pseudonym("+31612345002")))
    answers = {}
    with api.client() as c:
        for partner in ("bank-a", "bank-b", "platform-a", "telco-a"):
            r = c.post(
                "/v1/risk/numbers:lookup", json={"phoneNumber": "+31612345002"}, headers=api.auth(partner)
            )
            assert r.status_code == 200, r.text
            answers[partner] = r.json()
    assert answers["bank-b"] == {"signal": True, "level": "high"}  # tier level
    assert answers["platform-a"]["score"] == 83 and "reasons" not in answers["platform-a"]  # tier score
    assert answers["bank-a"]["reasons"][0]["code"] == "HIGH_RECIPIENT_DIVERSITY"  # tier reasons
    assert "feature" not in answers["bank-a"]["reasons"][0]
    assert answers["telco-a"]["reasons"][0]["feature"] == "recipients_1h"  # tier full
    assert answers["telco-a"]["modelVersion"] == "rules-1"


def test_batch_in_order(api: ApiServer) -> None:
    with api.client() as c:
        r = c.post(
            "/v1/risk/numbers:batch",
            json={"phoneNumbers": ["+31612345002", "+346661113334", "+31612345999"]},
            headers=api.auth("bank-a"),
        )
        assert r.status_code == 200
        results = r.json()["results"]
        assert [x["phoneNumber"] for x in results] == ["+31612345002", "+346661113334", "+31612345999"]
        assert results[0]["result"]["level"] == "high"
        # pattern-valid but not a possible number: answered like an unseen number
        assert results[1]["result"] == results[2]["result"] == {"signal": False, "level": "none"}
        for bad in (["+31612345002", "not-a-number"], ["0612345002"], ["+31612345002"] * 101):
            refused = c.post("/v1/risk/numbers:batch", json={"phoneNumbers": bad}, headers=api.auth("bank-a"))
            assert refused.status_code == 400 and refused.json()["code"] == "INVALID_ARGUMENT"


def test_impossible_number_is_an_unseen_number(api: ApiServer) -> None:
    """The E.164 pattern is the contract: a number that matches it but that libphonenumber
    does not take (never ingested) is answered, audited and budgeted like any unseen number."""
    with api.client() as c:
        for phone in ("+346661113334", "+999999999"):
            r = c.post("/v1/risk/numbers:lookup", json={"phoneNumber": phone}, headers=api.auth("bank-b"))
            assert r.status_code == 200 and r.content == b'{"signal":false,"level":"none"}'
        national = c.post("/v1/risk/numbers:lookup", json={"phoneNumber": "0612345002"}, headers=api.auth("bank-b"))
        assert national.status_code == 400 and national.json()["code"] == "INVALID_ARGUMENT"


def test_errors_have_one_shape(api: ApiServer) -> None:
    with api.client() as c:
        cases = [
            c.post("/v1/risk/numbers:lookup", json={"phoneNumber": "+31612345002"}),  # 401
            c.post(
                "/v1/risk/numbers:lookup",
                json={"phoneNumber": "+31612345002"},
                headers={"Authorization": "Bearer x.y.z"},
            ),  # 401
            c.post(
                "/v1/risk/devices:lookup", json={"imei": "35209900176148"}, headers=api.auth("bank-a")
            ),  # 403
            c.post("/v1/risk/numbers:lookup", json={"phoneNumber": "abc"}, headers=api.auth("bank-a")),  # 400
            c.post(
                "/v1/risk/numbers:lookup",
                content=b"{",
                headers={**api.auth("bank-a"), "content-type": "application/json"},
            ),  # 400
            c.post("/v1/risk/numbers:lookup", content=b"x" * 300_000, headers=api.auth("bank-a")),  # 413
            c.get("/v1/nothing-here"),  # 404
            c.delete("/v1/risk/numbers:lookup"),  # 405
        ]
    assert [r.status_code for r in cases] == [401, 401, 403, 400, 400, 413, 404, 405]
    for r in cases:
        body = r.json()
        assert set(body) == {"status", "code", "message"}, body
        assert body["status"] == r.status_code
        assert "Traceback" not in r.text and 'File "' not in r.text


def test_correlator_echoed(api: ApiServer) -> None:
    with api.client() as c:
        r = c.post(
            "/v1/risk/numbers:lookup",
            json={"phoneNumber": "+31612345002"},
            headers={**api.auth("bank-a"), "x-correlator": "abc-123"},
        )
        assert r.headers["x-correlator"] == "abc-123"
        bad = c.post(
            "/v1/risk/numbers:lookup",
            json={"phoneNumber": "+31612345002"},
            headers={**api.auth("bank-a"), "x-correlator": "bad correlator!"},
        )
        assert bad.status_code == 400


def test_rate_limit_and_budget(api: ApiServer) -> None:
    with api.client() as c:
        statuses = []
        for i in range(8):
            r = c.post(
                "/v1/risk/numbers:lookup",
                json={"phoneNumber": f"+3161234{5100 + i}"},
                headers=api.auth("bank-tight"),
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert r.json()["code"] in ("TOO_MANY_REQUESTS", "QUOTA_EXCEEDED")
        assert statuses[:2] == [200, 200] and 429 in statuses
        time.sleep(1.1)
        # budget: 5 distinct numbers per hour; the sixth distinct number is refused
        api.app.state.limiter._counters.pop("bank-tight", None)
        seen = []
        for i in range(6):
            time.sleep(1.05)
            r = c.post(
                "/v1/risk/numbers:lookup",
                json={"phoneNumber": f"+3161234{5200 + i}"},
                headers=api.auth("bank-tight"),
            )
            seen.append(r.status_code)
        assert seen == [200] * 5 + [429]
        metrics = httpx.get(api.ops + "/metrics").text
        assert 'fraudradar_api_rate_limited_total{limit="budget",partner="bank-tight"}' in metrics
        assert 'fraudradar_api_lookup_budget_used_ratio{partner="bank-tight"} 1.0' in metrics


METERED = [
    ("/v1/risk/numbers:lookup", {"phoneNumber": "+31612349101"}, ["+31612349101"]),
    ("/v1/risk/numbers:batch", {"phoneNumbers": ["+31612349102", "+31612349103", "+31612349102"]},
     ["+31612349102", "+31612349103"]),
    ("/v1/risk/devices:lookup", {"imei": "35209900176148"}, []),
    ("/sim-swap/v2/check", {"phoneNumber": "+31612349104", "maxAge": 24}, ["+31612349104"]),
    ("/sim-swap/v2/retrieve-date", {"phoneNumber": "+31612349105"}, ["+31612349105"]),
    ("/device-swap/v1/check", {"phoneNumber": "+31612349106", "maxAge": 24}, ["+31612349106"]),
    ("/device-swap/v1/retrieve-date", {"phoneNumber": "+31612349107"}, ["+31612349107"]),
]


@pytest.mark.parametrize(("path", "body", "numbers"), METERED, ids=[m[0] for m in METERED])
def test_every_metered_route_charges_the_lookup_budget(
    api: ApiServer, path: str, body: dict[str, object], numbers: list[str]
) -> None:
    """Each lookup route books exactly the distinct entities it answered for in the partner's
    hourly budget (read from the limiter in this process): a route that skipped the budget
    would let a partner enumerate numbers through it."""
    limiter = api.app.state.limiter
    limiter._counters.pop("telco-a", None)
    with api.client() as c:
        r = c.post(path, json=body, headers=api.auth("telco-a"))
    # Device Swap answers a number without records 422 SERVICE_NOT_APPLICABLE: still a lookup
    assert r.status_code == (422 if path.startswith("/device-swap/") else 200), r.text
    if path == "/v1/risk/devices:lookup":
        expected = {f"device:{api.app.state.resolver.device(body['imei'])}"}
    else:
        expected = {api.pseudonym(n) for n in numbers}
    assert limiter._counters["telco-a"].seen_this_hour == expected


def test_every_lookup_is_audited(api: ApiServer) -> None:
    phone, impossible = "+31612345777", "+346661113334"
    with api.client() as c:
        r = c.post(
            "/v1/risk/numbers:lookup",
            json={"phoneNumber": phone},
            headers={**api.auth("platform-a"), "x-correlator": "corr-777"},
        )
        assert r.status_code == 200
        r = c.post(
            "/sim-swap/v2/check",
            json={"phoneNumber": phone, "maxAge": 24},
            headers={**api.auth("telco-a"), "x-correlator": "corr-778"},
        )
        assert r.status_code == 200
        r = c.post(
            "/v1/risk/numbers:lookup",
            json={"phoneNumber": impossible},
            headers={**api.auth("platform-a"), "x-correlator": "corr-779"},
        )
        assert r.status_code == 200
    api.service.producer.flush()
    wanted = {api.pseudonym(phone), api.pseudonym(impossible)}
    consumer = KafkaConsumer(bootstrap_servers=api.bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(api.prefix + AUDIT, p) for p in consumer.partitions_for_topic(api.prefix + AUDIT) or {0}]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    records = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(records) < 3:
        for batch in consumer.poll(timeout_ms=500).values():
            records += [
                r
                for r in map(decode_audit, (m.value for m in batch))
                if r.entity in wanted and (r.correlator or "").startswith("corr-77")
            ]
    consumer.close()
    records.sort(key=lambda r: r.correlator or "")
    assert [(r.partner, r.action, r.answer_level, r.correlator, r.purpose) for r in records] == [
        ("platform-a", "numbers:lookup", "none", "corr-777", "dpv:FraudPreventionAndDetection"),
        ("telco-a", "sim-swap:check", "unknown", "corr-778", "dpv:FraudPreventionAndDetection"),
        ("platform-a", "numbers:lookup", "none", "corr-779", "dpv:FraudPreventionAndDetection"),
    ]
    assert phone not in str(records) and impossible not in str(records)
