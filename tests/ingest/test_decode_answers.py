"""What the decoder answers, exactly: every field of a decoded event and the code and detail of
each refusal (partners and the DLQ read both). Found by mutation testing (docs/mutation.md): the
reason-code table alone let changed defaults, dropped fields and changed details through."""

from __future__ import annotations

import sys
from typing import Any

import orjson
import pytest

from services.ingest.decode import (
    CallInfo,
    RawEvent,
    Rejected,
    SimInfo,
    SmsInfo,
    decode,
    load_schema,
    parse_timestamp_ms,
)

SMS: dict[str, Any] = {
    "event_id": "e-1", "operator": "kpn", "type": "sms", "occurred_at": "2026-11-02T10:00:00+01:00",
    "a_number": "+31612345678", "b_number": "0687654321",
    "sms": {"segments": 2},
}
T_MS = 1793610000000   # 2026-11-02T09:00:00Z


def _event(**changes: Any) -> bytes:
    ev = {**SMS, **changes}
    return orjson.dumps({k: v for k, v in ev.items() if v is not ...})


def test_a_minimal_sms_event_gets_the_documented_defaults() -> None:
    assert decode(_event()) == RawEvent(
        event_id="e-1", operator="kpn", type="sms", occurred_ms=T_MS, a_number="+31612345678",
        b_number="0687654321", direction="mo", imei=None, imsi=None, cell_id=None,
        sms=SmsInfo(segments=2, has_url=False, chars=0), call=None, sim=None, content_stripped=False)


def test_every_field_sent_is_carried() -> None:
    raw = _event(direction="mt", imei="356938035643809", imsi="204081234567890", cell_id="ams-0042",
                 sms={"segments": 3, "has_url": True, "chars": 300})
    assert decode(raw) == RawEvent(
        event_id="e-1", operator="kpn", type="sms", occurred_ms=T_MS, a_number="+31612345678",
        b_number="0687654321", direction="mt", imei="356938035643809", imsi="204081234567890",
        cell_id="ams-0042", sms=SmsInfo(segments=3, has_url=True, chars=300), call=None, sim=None,
        content_stripped=False)


def test_a_call_event_carries_its_duration_and_answer() -> None:
    ev = decode(_event(type="call", sms=..., call={"duration_s": 12.5, "answered": False}))
    assert isinstance(ev, RawEvent)
    assert (ev.type, ev.call, ev.sms, ev.sim) == ("call", CallInfo(duration_s=12.5, answered=False), None, None)
    ev = decode(_event(type="call", sms=..., call={"duration_s": 0, "answered": True}))
    assert isinstance(ev, RawEvent) and ev.call == CallInfo(duration_s=0.0, answered=True)


def test_a_sim_event_carries_its_change_and_identifiers() -> None:
    full = {"change": "swap", "msisdn": "+31612345678", "imsi": "204081234567890", "imei": "356938035643809"}
    ev = decode(_event(type="sim", sms=..., a_number=..., b_number=..., sim=full))
    assert isinstance(ev, RawEvent)
    assert ev.sim == SimInfo(change="swap", msisdn="+31612345678", imsi="204081234567890", imei="356938035643809")
    assert (ev.sms, ev.call, ev.a_number, ev.b_number) == (None, None, None, None)
    ev = decode(_event(type="sim", sms=..., sim={"change": "port_in", "msisdn": "0612345678"}))
    assert isinstance(ev, RawEvent)
    assert ev.sim == SimInfo(change="port_in", msisdn="0612345678", imsi=None, imei=None)


def test_schema_version_one_is_read_and_others_are_named_in_the_refusal() -> None:
    assert isinstance(decode(_event(schema_version=1)), RawEvent)
    assert decode(_event(schema_version=2)) == Rejected(
        "SCHEMA_VERSION", "unsupported schema_version '2' (this ingest reads 1)")
    assert decode(_event(schema_version=True)) == Rejected(
        "SCHEMA_VERSION", "unsupported schema_version 'True' (this ingest reads 1)")
    # the version echoed back is cut to 20 characters
    assert decode(_event(schema_version="v" * 30)) == Rejected(
        "SCHEMA_VERSION", f"unsupported schema_version {'v' * 20!r} (this ingest reads 1)")


@pytest.mark.parametrize("occurred_at", [
    "2026-11-02T10:00:00",          # no offset: refused by the timestamp parser
    "2026-11-02T10:00:00+01:00" + "0" * 20,   # longer than the schema's 40 characters
    "2026-12-31T23:59:60Z",         # a leap second: the schema passes it, the parser cannot represent it
    "2026-11-02T09:00:00z",         # a lower case 'z': the schema passes it, the parser refuses it
])
def test_a_bad_timestamp_gets_the_rfc3339_detail(occurred_at: str) -> None:
    assert decode(_event(occurred_at=occurred_at)) == Rejected(
        "BAD_TIMESTAMP", "occurred_at must be RFC 3339 with an offset")


@pytest.mark.parametrize(("text", "ms"), [
    ("2026-11-02T09:00:00Z", T_MS),                 # the shortest form (20 characters)
    ("2026-11-02t09:00:00Z", T_MS),                 # RFC 3339 allows a lower case 't'
    ("2026-11-02t09:00:00z", None),                 # ... and 'z', which the ingest contract refuses
                                                    # (reliability/hostile.py labels it BAD_TIMESTAMP)
    ("2026-11-02T10:00:00.250+01:00", T_MS + 250),
    ("2026-11-02X09:00:00Z", None),                 # only 'T' or 't' separate date and time
    ("2026-11-02 09:00:00Z", None),
    ("2026-11-02T09:00Z", None),                    # RFC 3339 requires the seconds
    ("2026-11-02", None),
    ("2026-11-02T09:00:00", None),                  # no offset
    ("2026-11-02T09:00:00+25:00", None),
])
def test_parse_timestamp_ms_accepts_rfc3339_only(text: str, ms: int | None) -> None:
    assert parse_timestamp_ms(text) == ms


def test_schema_refusals_name_the_field_and_say_what_is_wrong() -> None:
    assert decode(_event(event_id=...)) == Rejected("MISSING_FIELD", 'event: "event_id" is a required property')
    assert decode(_event(type="fax")) == Rejected(
        "UNKNOWN_TYPE", "type must be one of sms, call, sim, forwarding, subscription, call_state")
    # a non-string type is a wrong type, not an unknown one
    assert decode(_event(type=5)) == Rejected("WRONG_TYPE", 'type has the wrong type: 5 is not of type "string"')
    # other enumerations are invalid fields, not unknown types
    assert decode(_event(direction="sideways")) == Rejected(
        "INVALID_FIELD", 'direction: "sideways" is not one of "mo" or "mt"')
    sim = decode(_event(type="sim", sms=..., sim={"change": "theft", "msisdn": "1"}))
    assert isinstance(sim, Rejected) and sim.reason == "INVALID_FIELD" and sim.detail.startswith("sim.change: ")
    # nested fields are named by their dotted path
    assert decode(_event(sms={"segments": "two"})) == Rejected(
        "WRONG_TYPE", 'sms.segments has the wrong type: "two" is not of type "integer"')


def test_schema_error_messages_are_cut_to_120_characters() -> None:
    wrong = decode(_event(sms={"segments": "x" * 300}))
    assert isinstance(wrong, Rejected) and wrong.reason == "WRONG_TYPE"
    assert wrong.detail == "sms.segments has the wrong type: " + ('"' + "x" * 300)[:120]
    invalid = decode(_event(operator="Y" * 300))
    assert isinstance(invalid, Rejected) and invalid.reason == "INVALID_FIELD"
    assert invalid.detail == "operator: " + ('"' + "Y" * 300)[:120]


def test_refusals_before_the_schema_say_what_happened() -> None:
    assert decode(None) == Rejected("INVALID_JSON", "empty record value (tombstone)")  # type: ignore[arg-type]
    assert decode(b"{not json") == Rejected("INVALID_JSON", "not valid UTF-8 JSON")
    assert decode(b"[1, 2]") == Rejected("NOT_AN_OBJECT", "event must be a JSON object, got list")
    assert decode(b'"event"') == Rejected("NOT_AN_OBJECT", "event must be a JSON object, got str")
    assert decode(_event()[:-1] + b',"event_id":"other"}') == Rejected(
        "DUPLICATE_KEY", "an object repeats a member name (ambiguous: parsers disagree which wins)")
    deep = b'{"event_id":' + b"[" * 500 + b"]" * 500 + b"}"
    assert decode(deep) == Rejected("INVALID_FIELD", "event is nested too deeply")


def test_an_event_of_exactly_the_size_limit_is_read() -> None:
    raw = _event()
    assert isinstance(decode(raw, max_bytes=len(raw)), RawEvent)
    assert decode(raw, max_bytes=len(raw) - 1) == Rejected(
        "TOO_LARGE", f"event is {len(raw)} bytes, the limit is {len(raw) - 1}")


def test_content_is_stripped_and_reported_wherever_it_sits() -> None:
    top = decode(_event(text="Your parcel is waiting"))
    assert isinstance(top, RawEvent) and top.content_stripped is True
    inside = decode(_event(sms={"segments": 1, "body": "secret code 1234"}))
    assert isinstance(inside, RawEvent) and inside.content_stripped is True
    assert "secret" not in repr(inside)
    plain = decode(_event())
    assert isinstance(plain, RawEvent) and plain.content_stripped is False


def test_load_schema_is_the_shipped_v1_contract() -> None:
    schema = load_schema()
    assert schema["$id"] == "https://fraudradar.example/schemas/raw_event_v1.json"
    assert schema["required"] == ["event_id", "operator", "type", "occurred_at"]
    assert schema["properties"]["type"]["enum"] == ["sms", "call", "sim", "forwarding", "subscription", "call_state"]


def test_nesting_near_the_recursion_limit_is_never_taken_for_a_duplicate_key() -> None:
    # The duplicate-key check re-parses with the stdlib (a few frames deeper than msgspec) when
    # the fast member count disagrees (the '":' inside a string makes it disagree). Just below
    # msgspec's depth limit the stdlib runs out of recursion first: that is not a verdict.
    limit = sys.getrecursionlimit()
    answers = set()
    for depth in range(limit - 400, limit + 10):
        result = decode(b'{"a":"\\":","event_id":' + b"[" * depth + b"]" * depth + b"}")
        assert isinstance(result, Rejected)
        answers.add((result.reason, result.detail))
    # the scan crossed msgspec's limit, so it went through the band where only the stdlib fails
    assert answers == {("INVALID_FIELD", "event is nested too deeply"), ("INVALID_JSON", "not valid UTF-8 JSON")}


def test_a_call_duration_out_of_range_never_reaches_the_typed_event() -> None:
    # why the decoder's own finiteness check is unreachable (bench/mutation_triage.yaml)
    raw = _event(type="call", sms=..., call={"duration_s": 1, "answered": True})
    huge = decode(raw.replace(b'"duration_s":1', b'"duration_s":1e400'))
    assert huge == Rejected("INVALID_JSON", "not valid UTF-8 JSON")
    too_long = decode(raw.replace(b'"duration_s":1', b'"duration_s":86401'))
    assert isinstance(too_long, Rejected) and too_long.reason == "INVALID_FIELD"
