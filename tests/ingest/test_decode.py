"""Every reason code has a case; no input crashes the decoder."""

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.decode import REASON_CODES, RawEvent, Rejected, decode

GOOD: dict[str, Any] = {
    "event_id": "e-1", "operator": "kpn", "type": "sms", "occurred_at": "2026-11-02T10:00:00+01:00",
    "a_number": "+31612345678", "b_number": "0687654321", "direction": "mo",
    "imei": "356938035643809", "imsi": "204081234567890", "cell_id": "ams-0042",
    "sms": {"segments": 2, "has_url": True, "chars": 140},
}


def _with(**changes: Any) -> bytes:
    ev = dict(GOOD)
    for k, v in changes.items():
        if v is ...:
            ev.pop(k, None)
        else:
            ev[k] = v
    return orjson.dumps(ev)


def test_good_event_decodes_to_typed_event() -> None:
    ev = decode(orjson.dumps(GOOD))
    assert isinstance(ev, RawEvent)
    assert ev.occurred_ms == 1793610000000
    assert ev.sms is not None and ev.sms.segments == 2 and ev.sms.has_url
    assert not ev.content_stripped


CASES = [
    (b"{not json", "INVALID_JSON"),
    (b"\xff\xfe", "INVALID_JSON"),
    (b"", "INVALID_JSON"),
    (b"[1, 2]", "NOT_AN_OBJECT"),
    (b'"event"', "NOT_AN_OBJECT"),
    (_with(filler="x" * 70_000), "TOO_LARGE"),
    (_with(event_id=...), "MISSING_FIELD"),
    (_with(sms=...), "MISSING_FIELD"),
    (_with(event_id=42), "WRONG_TYPE"),
    (_with(sms={"segments": "two"}), "WRONG_TYPE"),
    (_with(type="fax"), "UNKNOWN_TYPE"),
    (_with(occurred_at="yesterday at noon"), "BAD_TIMESTAMP"),
    (_with(occurred_at="2026-11-02T10:00:00"), "BAD_TIMESTAMP"),  # no offset
    (_with(occurred_at="2026-13-02T10:00:00Z"), "BAD_TIMESTAMP"),
    (_with(b_number="06-CALL-ME"), "INVALID_NUMBER"),
    (_with(b_number="1" * 40), "INVALID_NUMBER"),
    (_with(imei="1234"), "INVALID_IMEI"),
    (_with(imsi="12345678901234567"), "INVALID_IMSI"),
    (_with(schema_version=2), "SCHEMA_VERSION"),
    (_with(operator="KPN Mobile!"), "INVALID_FIELD"),
    (orjson.dumps(GOOD)[:-1] + b',"event_id":"other"}', "DUPLICATE_KEY"),
    (_with(type="forwarding"), "MISSING_FIELD"),
    (_with(type="forwarding", forwarding={"action": "set", "kind": "sideways", "msisdn": "0612345678"}),
     "INVALID_FORWARDING"),
    (_with(type="forwarding", forwarding={"action": "toggled", "kind": "busy", "msisdn": "0612345678"}),
     "INVALID_FORWARDING"),
    (_with(type="forwarding", forwarding={"action": "set", "kind": "busy", "msisdn": "1" * 40}), "INVALID_NUMBER"),
    (_with(type="forwarding", forwarding={"action": "set", "msisdn": "0612345678"}), "MISSING_FIELD"),
    (_with(type="subscription"), "MISSING_FIELD"),
    (_with(type="subscription", subscription={"change": "paused", "msisdn": "0612345678"}), "INVALID_SUBSCRIPTION"),
    (_with(type="subscription", subscription={"change": "new", "msisdn": "0612345678", "contract": "gold"}),
     "INVALID_SUBSCRIPTION"),
    (_with(type="call_state", sms=..., call_state={"call_id": "c1", "state": "ringing"}), "INVALID_CALL_STATE"),
]


@pytest.mark.parametrize(("raw", "reason"), CASES, ids=[c[1] + f"-{i}" for i, c in enumerate(CASES)])
def test_each_malformed_case_has_its_reason(raw: bytes, reason: str) -> None:
    from services.common.pseudonym import Key, Pseudonymizer
    from services.ingest.pipeline import IngestPipeline
    from services.ingest.transform import Transformer

    pipeline = IngestPipeline(Transformer(Pseudonymizer(Key("k", b"k" * 32)), None))
    result = pipeline.process(raw, now_ms=None)
    assert result.reason == reason, result.detail
    assert result.views == []
    assert result.detail


def test_every_documented_reason_is_exercised() -> None:
    exercised = {reason for _, reason in CASES} | {"FUTURE_EVENT"}  # FUTURE_EVENT: test_pipeline
    assert exercised == set(REASON_CODES)


def test_message_content_is_stripped_and_reported() -> None:
    ev = decode(_with(text="Your parcel is waiting: http://x", sms={"segments": 1, "body": "secret"}))
    assert isinstance(ev, RawEvent)
    assert ev.content_stripped
    assert "secret" not in repr(ev) and "parcel" not in repr(ev)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    assert isinstance(decode(raw), RawEvent | Rejected)


# too_slow: on the shared 2-core CI machine (and under coverage or mutmut) drawing the first
# nested dictionaries has taken 33 s; slowness of the draw is not what this test checks
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*sorted(GOOD), "sim", "call", "schema_version", "text"]), json_values))
def test_arbitrary_objects_never_crash(obj: dict[str, Any]) -> None:
    merged = {**GOOD, **obj}
    try:
        raw = orjson.dumps(merged)
    except TypeError:
        return
    result = decode(raw)
    assert isinstance(result, RawEvent | Rejected)
    if isinstance(result, Rejected):
        assert result.reason in REASON_CODES


def test_deeply_nested_input_is_rejected_not_crashing() -> None:
    raw = b'{"event_id":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert isinstance(decode(raw), Rejected)


def test_forwarding_and_subscription_events_decode() -> None:
    """Contract v1's line events; sms/call/sim producers are untouched (the cases above)."""
    fwd = decode(orjson.dumps({"event_id": "f1", "operator": "kpn", "type": "forwarding",
                               "occurred_at": "2026-11-02T10:00:00Z",
                               "forwarding": {"action": "set", "kind": "not_reachable", "msisdn": "0612345678"}}))
    assert isinstance(fwd, RawEvent) and fwd.forwarding is not None
    assert (fwd.forwarding.action, fwd.forwarding.kind, fwd.forwarding.msisdn) == ("set", "not_reachable", "0612345678")
    sub = decode(orjson.dumps({"event_id": "s1", "operator": "kpn", "type": "subscription",
                               "occurred_at": "2026-11-02T10:00:00Z",
                               "subscription": {"change": "ceased", "msisdn": "+31612345678"}}))
    assert isinstance(sub, RawEvent) and sub.subscription is not None
    assert (sub.subscription.change, sub.subscription.contract) == ("ceased", None)


def test_an_unknown_type_names_every_type_of_the_contract() -> None:
    result = decode(_with(type="fax"))
    assert isinstance(result, Rejected)
    for name in ("sms", "call", "sim", "forwarding", "subscription"):
        assert name in result.detail
