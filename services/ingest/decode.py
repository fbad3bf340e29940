"""Raw bytes → a typed ``RawEvent`` or a ``Rejected`` with a stable reason code.

Decoding splits into oks and errs; errs are data, not exceptions: the function never raises
on any input (a hypothesis property test holds it to that). Validation is driven by the
shipped JSON Schema (``services/common/schemas/raw_event_v1.json``), compiled once by
jsonschema-rs (a Rust validator, far faster here than fastjsonschema, whose if/then branches
raise internally: docs/scorer.md "Measured"); the first error's kind and path map
onto the reason codes below. Timestamps are then
parsed strictly (RFC 3339 with an offset). Message content, if a telco sends it, is removed
before anything else looks at the event and the removal is reported (``content_stripped``).

Cost: msgspec parse + compiled schema check + timestamp (bench/decode.py measures it and
compares json, orjson and msgspec).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Final

import jsonschema_rs
import msgspec

SCHEMA_VERSION: Final = 1
DEFAULT_MAX_BYTES: Final = 64 * 1024

# Stable reason codes: partners and dashboards rely on them. Add, never rename.
INVALID_JSON: Final = "INVALID_JSON"
NOT_AN_OBJECT: Final = "NOT_AN_OBJECT"
TOO_LARGE: Final = "TOO_LARGE"
MISSING_FIELD: Final = "MISSING_FIELD"
WRONG_TYPE: Final = "WRONG_TYPE"
UNKNOWN_TYPE: Final = "UNKNOWN_TYPE"
BAD_TIMESTAMP: Final = "BAD_TIMESTAMP"
INVALID_NUMBER: Final = "INVALID_NUMBER"
INVALID_IMEI: Final = "INVALID_IMEI"
INVALID_IMSI: Final = "INVALID_IMSI"
SCHEMA_VERSION_CODE: Final = "SCHEMA_VERSION"
INVALID_FIELD: Final = "INVALID_FIELD"
FUTURE_EVENT: Final = "FUTURE_EVENT"
DUPLICATE_KEY: Final = "DUPLICATE_KEY"

REASON_CODES: Final = (
    INVALID_JSON, NOT_AN_OBJECT, TOO_LARGE, MISSING_FIELD, WRONG_TYPE, UNKNOWN_TYPE, BAD_TIMESTAMP,
    INVALID_NUMBER, INVALID_IMEI, INVALID_IMSI, SCHEMA_VERSION_CODE, INVALID_FIELD, FUTURE_EVENT,
    DUPLICATE_KEY,
)

# Keys under which telcos have been seen to send message text; removed, never read.
CONTENT_KEYS: Final = frozenset({"text", "body", "content", "message", "message_text", "sms_text", "payload"})
_NUMBER_FIELDS: Final = frozenset({"a_number", "b_number", "msisdn"})


class SmsInfo(msgspec.Struct, frozen=True):
    segments: int
    has_url: bool
    chars: int


class CallInfo(msgspec.Struct, frozen=True):
    duration_s: float
    answered: bool


class SimInfo(msgspec.Struct, frozen=True):
    change: str
    msisdn: str
    imsi: str | None
    imei: str | None


class RawEvent(msgspec.Struct, frozen=True):
    """A validated raw event; identifiers are still as sent (normalised by ``transform``)."""

    event_id: str
    operator: str
    type: str
    occurred_ms: int
    a_number: str | None
    b_number: str | None
    direction: str
    imei: str | None
    imsi: str | None
    cell_id: str | None
    sms: SmsInfo | None
    call: CallInfo | None
    sim: SimInfo | None
    content_stripped: bool


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why an input was refused: ``reason`` is a stable code, ``detail`` says where and what."""

    reason: str
    detail: str


def load_schema() -> dict[str, Any]:
    text = resources.files("services.common").joinpath("schemas/raw_event_v1.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


_validator = jsonschema_rs.validator_for(load_schema())
_parse = msgspec.json.Decoder().decode  # 1.4x orjson 3.8 to dicts here (bench/decode.py)
# Every object member name ends in '"', optional JSON whitespace and ':'. Occurrences inside
# string values only add to the count, so "count == members decoded" proves no key repeats.
_MEMBER_END = re.compile(rb'"[ \t\n\r]*:')
_MAX_KEY_WALK = 10_000


def _members(obj: Any) -> int:
    """Member names of every object in ``obj`` (iterative: depth was already bounded by the parser)."""
    total = 0
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            total += len(node)
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
        if total > _MAX_KEY_WALK:
            break
    return total


def _has_duplicate_keys(raw: bytes, obj: Any) -> bool:
    """True when an object repeats a member name (msgspec, like most parsers, keeps the last one).

    Parsers disagree on which duplicate wins (first, last, error), so an event with a repeated
    key can mean one thing to the telco's tooling and another here: it is refused, not guessed.
    The fast path is a regex count; only a mismatch pays for the exact check with the stdlib parser.
    """
    if len(_MEMBER_END.findall(raw)) == _members(obj):
        return False
    duplicate = False

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicate
        result = dict(pairs)
        if len(result) != len(pairs):
            duplicate = True
        return result

    try:
        json.loads(raw, object_pairs_hook=pairs_hook)
    except (ValueError, RecursionError):
        return False  # msgspec accepted it; the stdlib's stricter limits are not a verdict
    return duplicate


def parse_timestamp_ms(text: str) -> int | None:
    """RFC 3339 with offset → epoch ms; None when unparseable or without an offset."""
    if not isinstance(text, str) or len(text) < 20 or text[10] not in "Tt":
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None or dt.utcoffset() is None:
        return None
    return int(dt.timestamp() * 1000)


def _schema_reason(obj: dict[str, Any]) -> Rejected:
    error = next(iter(_validator.iter_errors(obj)))
    path = [str(p) for p in error.instance_path]
    field = ".".join(path) or "event"
    leaf = path[-1] if path else ""
    kind = type(error.kind).__name__
    if kind == "Required":
        return Rejected(MISSING_FIELD, f"{field}: {error.message}")
    if leaf == "type" and len(path) == 1 and kind in ("Enum", "Constant"):
        return Rejected(UNKNOWN_TYPE, "type must be one of sms, call, sim")
    if leaf == "schema_version":
        return Rejected(SCHEMA_VERSION_CODE, f"unsupported schema_version (this ingest reads {SCHEMA_VERSION})")
    if kind == "Type":
        return Rejected(WRONG_TYPE, f"{field} has the wrong type: {error.message[:120]}")
    if leaf == "occurred_at":
        return Rejected(BAD_TIMESTAMP, "occurred_at must be RFC 3339 with an offset")
    if leaf == "imei":
        return Rejected(INVALID_IMEI, f"{field} must be 14 to 16 digits")
    if leaf == "imsi":
        return Rejected(INVALID_IMSI, f"{field} must be 6 to 15 digits")
    if leaf in _NUMBER_FIELDS:
        return Rejected(INVALID_NUMBER, f"{field} must be 1 to 32 characters")
    return Rejected(INVALID_FIELD, f"{field}: {error.message[:120]}")


def _strip_content(obj: dict[str, Any]) -> bool:
    stripped = False
    for key in CONTENT_KEYS & obj.keys():
        del obj[key]
        stripped = True
    sms = obj.get("sms")
    if isinstance(sms, dict):
        for key in CONTENT_KEYS & sms.keys():
            del sms[key]
            stripped = True
    return stripped


def decode(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> RawEvent | Rejected:
    """Decode one record value; never raises."""
    if raw is None:
        return Rejected(INVALID_JSON, "empty record value (tombstone)")
    if len(raw) > max_bytes:
        return Rejected(TOO_LARGE, f"event is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        obj = _parse(raw)
    # ValueError: msgspec raises UnicodeDecodeError (not DecodeError) for invalid UTF-8 inside a string
    except (msgspec.DecodeError, TypeError, RecursionError, ValueError):
        return Rejected(INVALID_JSON, "not valid UTF-8 JSON")
    if not isinstance(obj, dict):
        return Rejected(NOT_AN_OBJECT, f"event must be a JSON object, got {type(obj).__name__}")
    if _has_duplicate_keys(raw, obj):
        return Rejected(DUPLICATE_KEY, "an object repeats a member name (ambiguous: parsers disagree which wins)")
    try:
        return _from_object(obj)
    except (RecursionError, ValueError):  # jsonschema-rs: "Recursion limit reached"
        return Rejected(INVALID_FIELD, "event is nested too deeply")


def _from_object(obj: dict[str, Any]) -> RawEvent | Rejected:
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return Rejected(SCHEMA_VERSION_CODE, f"unsupported schema_version {str(version)[:20]!r} (this ingest reads 1)")
    content_stripped = _strip_content(obj)
    if not _validator.is_valid(obj):
        return _schema_reason(obj)
    occurred_ms = parse_timestamp_ms(obj["occurred_at"])
    if occurred_ms is None:
        return Rejected(BAD_TIMESTAMP, "occurred_at must be RFC 3339 with an offset")
    sms = call = sim = None
    if (s := obj.get("sms")) is not None:
        # the schema's "integer" admits 1.0; views must carry ints (a float fails the typed decoders)
        sms = SmsInfo(int(s["segments"]), bool(s.get("has_url", False)), int(s.get("chars", 0)))
    if (c := obj.get("call")) is not None:
        duration = float(c["duration_s"])
        if not math.isfinite(duration):
            return Rejected(WRONG_TYPE, "call.duration_s must be a finite number")
        call = CallInfo(duration, c["answered"])
    if (m := obj.get("sim")) is not None:
        sim = SimInfo(m["change"], m["msisdn"], m.get("imsi"), m.get("imei"))
    return RawEvent(
        event_id=obj["event_id"], operator=obj["operator"], type=obj["type"], occurred_ms=occurred_ms,
        a_number=obj.get("a_number"), b_number=obj.get("b_number"), direction=obj.get("direction", "mo"),
        imei=obj.get("imei"), imsi=obj.get("imsi"), cell_id=obj.get("cell_id"),
        sms=sms, call=call, sim=sim, content_stripped=content_stripped,
    )
