"""Regressions found by the reliability suite's hostile-input corpus (docs/reliability.md)."""

from __future__ import annotations

import orjson
import pytest

from services.common.normalise import InvalidNumber, normalise_number
from services.common.pseudonym import Key, Pseudonymizer
from services.common.records import decode_views, encode_view_bundle
from services.ingest.decode import RawEvent, Rejected, decode
from services.ingest.pipeline import IngestPipeline
from services.ingest.transform import Transformer

GOOD = {"event_id": "e1", "operator": "kpn", "type": "sms", "occurred_at": "2026-11-02T10:00:00+01:00",
        "a_number": "+31612345678", "b_number": "0687654321", "sms": {"segments": 1, "chars": 20}}


def _pipeline() -> IngestPipeline:
    return IngestPipeline(Transformer(Pseudonymizer(Key("k", b"k" * 32)), None))


@pytest.mark.parametrize("raw", [
    orjson.dumps(GOOD).replace(b'"e1"', b'"\xff\xfe"'),   # invalid UTF-8 inside a string
    orjson.dumps(GOOD).replace(b'"e1"', b'"\xc0\xaf"'),   # overlong encoding of '/'
    orjson.dumps(GOOD).replace(b'"e1"', b'"\xed\xa0\x80"'),  # a UTF-16 surrogate encoded in UTF-8
])
def test_invalid_utf8_inside_a_string_is_rejected_not_raised(raw: bytes) -> None:
    # msgspec raises UnicodeDecodeError (not DecodeError) here: uncaught, it crashes the consumer
    result = decode(raw)
    assert isinstance(result, Rejected) and result.reason == "INVALID_JSON"


@pytest.mark.parametrize("raw", [
    b'{"event_id":"e1","event_id":"e2","operator":"kpn","type":"sim","occurred_at":"2026-11-02T10:00:00Z",'
    b'"sim":{"change":"swap","msisdn":"+31612345678"}}',
    b'{"event_id":"e1","operator":"kpn","type":"sim","occurred_at":"2026-11-02T10:00:00Z",'
    b'"sim":{"change":"swap","msisdn":"+31612345678","msisdn":"+31600000000"}}',
    b'{"event_id":"e1","operator":"kpn","type":"sim","occurred_at":"2026-11-02T10:00:00Z",'
    b'"sim":{"change":"swap","msisdn":"+31612345678"}, "sim" :{"change":"swap","msisdn":"+31600000000"}}',
    b'{"event_id":"e1","operator":"kpn","type":"sim","occurred_at":"2026-11-02T10:00:00Z",'
    b'"x":[{"a":1,"a":2}],"sim":{"change":"swap","msisdn":"+31612345678"}}',
])
def test_duplicate_member_names_are_refused(raw: bytes) -> None:
    result = decode(raw)
    assert isinstance(result, Rejected) and result.reason == "DUPLICATE_KEY"


def test_colons_inside_strings_do_not_look_like_duplicates() -> None:
    raw = orjson.dumps({**GOOD, "cell_id": 'a":b":c" :d', "note": {"k": 'x":'}})
    assert isinstance(decode(raw), RawEvent)


@pytest.mark.parametrize(("field", "value"), [("event_id", "a\x00b"), ("event_id", "a\nb"), ("cell_id", "c\x00"),
                                              ("cell_id", "\x7f")])
def test_control_characters_in_identifiers_are_refused(field: str, value: str) -> None:
    result = decode(orjson.dumps({**GOOD, field: value}))
    assert isinstance(result, Rejected) and result.reason == "INVALID_FIELD"


def test_trailing_newline_does_not_make_a_new_sender_id() -> None:
    assert normalise_number("PayPal", allow_alphanumeric=True).value == "PayPal"
    with pytest.raises(InvalidNumber):
        normalise_number("PayPal\n", allow_alphanumeric=True)


def test_integral_floats_become_ints_so_the_view_bundle_stays_decodable() -> None:
    # "segments": 1.0 passes the schema's "integer"; as a float it made the whole bundle of
    # up to 500 views undecodable for the scorer
    raw = orjson.dumps({**GOOD, "sms": {"segments": 2.0, "chars": 80.0}})
    result = _pipeline().process(raw, now_ms=None)
    assert result.reason is None
    views = decode_views(encode_view_bundle(result.views))
    assert views[0].sms is not None and views[0].sms.segments == 2 and views[0].sms.chars == 80
