"""CAMARA Call Forwarding Signal 0.4.0, KYC Tenure 0.2.0 and Number Recycling 0.2.0 through the
whole stack on a real broker: contract v1 events in through ``fraudradar ingest``, the scorer
(``fraudradar score``) keeping each number's line, answers from the API; every answer and error is
validated against the vendored spec (tests/api/specs). SIM Swap and Device Swap answer a new
subscription as the latest change end to end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.common import topics
from tests.api.conftest import ApiServer, eventually, start_api
from tests.api.test_camara_integration import _error_validator, _spec, _validator
from tests.support.kafka_io import produce_all
from tests.support.procs import start_service, stop_service

pytestmark = pytest.mark.kafka

FWD = "+31612347001"      # seen on traffic 10 days ago; unconditional forwarding set, busy set then cleared
NEW = "+31612347002"      # a new subscription 10 days ago
RECYCLED = "+31612347003"  # new 12 days ago, ceased 8 days ago, new again 3 days ago
CEASED = "+31612347004"   # new 11 days ago, ceased 2 days ago (its forwarding ends with it)
UNKNOWN = "+31612347999"  # possible, never in any event
NOW = datetime.now(UTC).replace(microsecond=0)
CF = "/call-forwarding-signal/v0.4"
TENURE = "/kyc-tenure/v0.2/check-tenure"
RECYCLING = "/number-recycling/v0.2/check"


def _at(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def _day(days: int) -> str:
    return (NOW.date() - timedelta(days=days)).isoformat()


def _events() -> list[dict[str, Any]]:
    def fwd(n: str, days: float, action: str, kind: str) -> dict[str, Any]:
        return {"type": "forwarding", "occurred_at": _at(days),
                "forwarding": {"action": action, "kind": kind, "msisdn": n}}

    def sub(n: str, days: float, change: str, contract: str | None = None) -> dict[str, Any]:
        part = {"change": change, "msisdn": n, **({"contract": contract} if contract else {})}
        return {"type": "subscription", "occurred_at": _at(days), "subscription": part}

    events = [
        {"type": "sms", "occurred_at": _at(10), "a_number": FWD, "b_number": "+31687654321",
         "sms": {"segments": 1}},
        fwd(FWD, 2, "set", "unconditional"), fwd(FWD, 1, "set", "busy"), fwd(FWD, 0.5, "cleared", "busy"),
        sub(NEW, 10, "new", "PAYM"),
        sub(RECYCLED, 12, "new", "PAYG"), sub(RECYCLED, 8, "ceased"), sub(RECYCLED, 3, "new", "business"),
        sub(CEASED, 11, "new"), fwd(CEASED, 10, "set", "no_answer"), sub(CEASED, 2, "ceased"),
    ]
    events.sort(key=lambda e: e["occurred_at"])
    return [{"event_id": f"line-{i}", "operator": "kpn", **e} for i, e in enumerate(events)]


def _number_of(event: dict[str, Any]) -> str:
    return str(event.get("a_number") or event.get(event["type"], {}).get("msisdn"))


@pytest.fixture(scope="module")
def stack(api: ApiServer, api_prefix: str, kafka_bootstrap: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    logs = tmp_path_factory.mktemp("line-stack")
    env = {"FRAUDRADAR_BOOTSTRAP": kafka_bootstrap, "FRAUDRADAR_TOPIC_PREFIX": api_prefix, "FRAUDRADAR_HTTP_PORT": "0"}
    ingest = start_service(["ingest"], {**env, "FRAUDRADAR_GROUP_ID": f"ingest-{uuid.uuid4().hex[:8]}"},
                           logs / "ingest.log")
    scorer = start_service(["score", "--http-port", "0"],
                           {**env, "FRAUDRADAR_GROUP_ID": f"scorer-{uuid.uuid4().hex[:8]}",
                            "FRAUDRADAR_COMMIT_INTERVAL_S": "0.3"}, logs / "scorer.log")
    try:
        # keyed by the number, as docs/contracts.md asks of line events: one number's changes
        # then stay in order through ingest (its state is the latest change applied)
        produce_all(kafka_bootstrap, api_prefix + topics.RAW,
                    [(_number_of(e).encode(), orjson.dumps(e)) for e in _events()])

        def risks() -> dict[str, Any]:
            return {n: api.service.risk.get("number:" + api.pseudonym(n)) for n in (FWD, NEW, RECYCLED, CEASED)}

        def settled() -> bool:
            risk = risks()
            return (all(r is not None for r in risk.values())
                    and risk[FWD].forwarding == ["unconditional"]
                    and risk[RECYCLED].line == "recycled" and risk[CEASED].line == "ceased")

        try:
            eventually(settled, timeout_s=120)
        except AssertionError as exc:
            tails = "\n".join((logs / f).read_text()[-2000:] for f in ("ingest.log", "scorer.log"))
            raise AssertionError(f"{risks()}\n{tails}") from exc
        yield api
    finally:
        stop_service(scorer)
        stop_service(ingest)


def _post(api: ApiServer, path: str, body: dict[str, Any], client: str = "telco-a",
          correlator: str | None = None) -> Any:
    headers = api.auth(client) if client else {}
    if correlator:
        headers["x-correlator"] = correlator
    with api.client() as c:
        return c.post(path, json=body, headers=headers)


def test_call_forwardings_follow_set_and_cleared(stack: ApiServer) -> None:
    spec = _spec("camara-call-forwarding-signal-v0.4.0.yaml")
    r = _post(stack, f"{CF}/unconditional-call-forwardings", {"phoneNumber": FWD}, correlator="cf-1")
    assert r.status_code == 200 and r.json() == {"active": True} and r.headers["x-correlator"] == "cf-1"
    _validator(spec, "UnconditionalCallForwardingSignal").validate(r.json())
    r = _post(stack, f"{CF}/call-forwardings", {"phoneNumber": FWD})
    assert r.status_code == 200 and r.json() == ["unconditional"], r.text   # busy was set, then cleared
    _validator(spec, "CallForwardingSignal").validate(r.json())
    for number in (NEW, CEASED, UNKNOWN):   # none set; a ceased line's forwarding ended with it
        assert _post(stack, f"{CF}/call-forwardings", {"phoneNumber": number}).json() == ["inactive"]
        assert _post(stack, f"{CF}/unconditional-call-forwardings",
                     {"phoneNumber": number}).json() == {"active": False}


@pytest.mark.parametrize(("number", "days", "expected"), [
    (NEW, 11, False), (NEW, 9, True),             # since the new subscription
    (RECYCLED, 4, False), (RECYCLED, 2, True),    # the current subscriber's, not the number's first
    (FWD, 11, False), (FWD, 9, True),             # no subscription event: since first seen on traffic
])
def test_tenure_from_the_subscription_or_first_seen(stack: ApiServer, number: str, days: int,
                                                    expected: bool) -> None:
    r = _post(stack, TENURE, {"phoneNumber": number, "tenureDate": _day(days)})
    assert r.status_code == 200 and r.json() == {"tenureDateCheck": expected}, r.text
    _validator(_spec("camara-kyc-tenure-v0.2.0.yaml"), "TenureInfo").validate(r.json())


@pytest.mark.parametrize("number", [CEASED, UNKNOWN])
def test_tenure_without_a_subscription_is_not_applicable(stack: ApiServer, number: str) -> None:
    r = _post(stack, TENURE, {"phoneNumber": number, "tenureDate": _day(30)})
    assert (r.status_code, r.json()["code"]) == (422, "SERVICE_NOT_APPLICABLE"), r.text
    _error_validator(_spec("camara-kyc-tenure-v0.2.0.yaml"), "Generic422").validate(r.json())


@pytest.mark.parametrize(("number", "days", "expected"), [
    (RECYCLED, 5, True), (RECYCLED, 2, False), (RECYCLED, 30, True),
    (NEW, 30, False), (CEASED, 30, False), (UNKNOWN, 30, False),
])
def test_recycled_only_after_a_cease_and_a_new_subscription(stack: ApiServer, number: str, days: int,
                                                            expected: bool) -> None:
    r = _post(stack, RECYCLING, {"phoneNumber": number, "specifiedDate": _day(days)})
    assert r.status_code == 200 and r.json() == {"phoneNumberRecycled": expected}, r.text
    _validator(_spec("camara-number-recycling-v0.2.0.yaml"), "CheckNumRecyclingInfo").validate(r.json())


def test_sim_and_device_swap_count_the_new_subscription(stack: ApiServer) -> None:
    activated = datetime.fromisoformat(_at(10))
    for path, field in (("/sim-swap/v2/retrieve-date", "latestSimChange"),
                        ("/device-swap/v1/retrieve-date", "latestDeviceChange")):
        r = _post(stack, path, {"phoneNumber": NEW})
        assert r.status_code == 200 and datetime.fromisoformat(r.json()[field]) == activated, r.text


OPERATIONS = [
    ("camara-call-forwarding-signal-v0.4.0.yaml", f"{CF}/unconditional-call-forwardings", {}),
    ("camara-call-forwarding-signal-v0.4.0.yaml", f"{CF}/call-forwardings", {}),
    ("camara-kyc-tenure-v0.2.0.yaml", TENURE, {"tenureDate": _day(5)}),
    ("camara-number-recycling-v0.2.0.yaml", RECYCLING, {"specifiedDate": _day(5)}),
]


@pytest.mark.parametrize(("spec_file", "path", "extra"), OPERATIONS)
def test_every_error_the_spec_lists(stack: ApiServer, spec_file: str, path: str, extra: dict[str, Any]) -> None:
    spec = _spec(spec_file)
    cases = [
        ({**extra}, "telco-a", 422, "MISSING_IDENTIFIER", "Generic422"),
        ({**extra, "phoneNumber": "+99912345678"}, "telco-a", 404, "IDENTIFIER_NOT_FOUND", "Generic404"),
        ({**extra, "phoneNumber": "0612347001"}, "telco-a", 400, "INVALID_ARGUMENT", "Generic400"),
        ({**extra, "phoneNumber": FWD}, "bank-a", 403, "PERMISSION_DENIED", "Generic403"),
        ({**extra, "phoneNumber": FWD}, "", 401, "UNAUTHENTICATED", "Generic401"),
    ]
    if extra:   # the dated operations: the date is required, a date, and not in the future
        field = next(iter(extra))
        cases += [
            ({"phoneNumber": FWD}, "telco-a", 400, "INVALID_ARGUMENT", "Generic400"),
            ({"phoneNumber": FWD, field: "31-12-2024"}, "telco-a", 400, "INVALID_ARGUMENT", "Generic400"),
            ({"phoneNumber": FWD, field: "2024-12-31T00:00:00Z"}, "telco-a", 400, "INVALID_ARGUMENT", "Generic400"),
            ({"phoneNumber": FWD, field: 0}, "telco-a", 400, "INVALID_ARGUMENT", "Generic400"),
            ({"phoneNumber": FWD, field: (date.today() + timedelta(days=2)).isoformat()}, "telco-a", 400,
             "OUT_OF_RANGE", "Generic400"),
        ]
    for body, client, status, code, response in cases:
        r = _post(stack, path, body, client=client, correlator="err-1")
        assert (r.status_code, r.json()["code"]) == (status, code), (body, client, r.text)
        assert r.headers["x-correlator"] == "err-1"
        _error_validator(spec, response).validate(r.json())


def test_each_answer_is_audited_and_metered(stack: ApiServer) -> None:
    with stack.client() as c:
        before = c.get(stack.ops + "/metrics").text
        _post(stack, TENURE, {"phoneNumber": NEW, "tenureDate": _day(5)})
        after = c.get(stack.ops + "/metrics").text
        stack.service.producer.flush()

        def audited() -> bool:
            r = c.post("/v1/audit:query", json={"phoneNumber": NEW}, headers=stack.auth("operator-a"))
            return r.status_code == 200 and any(e["action"] == "kyc-tenure:check" for e in r.json()["records"])

        assert eventually(audited)

    def tenure_lookups(text: str) -> float:
        lines = [ln for ln in text.splitlines()
                 if ln.startswith("fraudradar_api_lookups_total") and 'kind="kyc_tenure"' in ln]
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)

    assert tenure_lookups(after) == tenure_lookups(before) + 1



def test_a_restarted_api_answers_the_same(stack: ApiServer, api_prefix: str, kafka_bootstrap: str,
                                          tmp_path: Path) -> None:
    """The answers come from the compacted risk topic: a new replica rebuilds them on start."""
    fresh, thread = start_api(tmp_path, kafka_bootstrap, api_prefix)
    try:
        eventually(lambda: (r := fresh.service.risk.get("number:" + fresh.pseudonym(CEASED))) and r.line == "ceased")
        assert _post(fresh, f"{CF}/call-forwardings", {"phoneNumber": FWD}).json() == ["unconditional"]
        assert _post(fresh, RECYCLING, {"phoneNumber": RECYCLED, "specifiedDate": _day(5)}).json() == {
            "phoneNumberRecycled": True}
        assert _post(fresh, TENURE, {"phoneNumber": NEW, "tenureDate": _day(9)}).json() == {"tenureDateCheck": True}
    finally:
        thread.stop()
