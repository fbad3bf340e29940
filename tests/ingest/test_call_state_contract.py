"""The call_state contract: schema, specific DLQ reasons, the pseudonymised record, the CSV mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.common.call_records import decode_call_state, encode_call_state
from services.common.protected_numbers import ProtectedNumbers
from services.common.pseudonym import Key, Pseudonymizer
from services.ingest.call_transform import CallTransformer
from services.ingest.cdr_import import import_cdr, load_mapping
from services.ingest.decode import INVALID_CALL_STATE, REASON_CODES, CallStateInfo, Rejected, decode
from services.ingest.pipeline import IngestPipeline
from services.ingest.transform import Transformer

SAMPLES = Path(__file__).resolve().parents[2] / "services" / "ingest" / "samples"
PSEUDO = Pseudonymizer(Key("t1", b"k" * 32))
BANK_NUMBER = "+31201234567"


def event(**call_state: Any) -> dict[str, Any]:
    return {"event_id": "e1", "operator": "kpn", "type": "call_state", "occurred_at": "2026-01-01T10:00:00Z",
            "a_number": "+442071234567", "b_number": "0612345678", "direction": "mt",
            "call_state": {"call_id": "c1", "state": "started", **call_state}}


def raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_the_three_steps_decode() -> None:
    for state, extra in (("started", {}), ("answered", {}), ("ended", {"duration_s": 61.5})):
        ev = decode(raw(event(state=state, presented_cli=BANK_NUMBER, international=True, **extra)))
        assert not isinstance(ev, Rejected), ev
        assert ev.call_state == CallStateInfo("c1", state, BANK_NUMBER, True, False, extra.get("duration_s"))


@pytest.mark.parametrize(("change", "reason"), [
    ({"state": "ringing"}, INVALID_CALL_STATE),
    ({"state": "started", "duration_s": 3}, INVALID_CALL_STATE),      # duration on a live step
    ({"state": "ended"}, "MISSING_FIELD"),                             # ended without duration
    ({"call_id": "c\u0001"}, INVALID_CALL_STATE),                      # control character in the id
    ({"state": "ended", "duration_s": -1}, INVALID_CALL_STATE),
    ({"presented_cli": ""}, "INVALID_NUMBER"),
    ({"international": "yes"}, "WRONG_TYPE"),
])
def test_bad_call_state_gets_a_specific_reason(change: dict[str, Any], reason: str) -> None:
    result = decode(raw(event(**change)))
    assert isinstance(result, Rejected) and result.reason == reason, result
    assert result.reason in REASON_CODES


def test_call_state_event_without_its_object_is_missing_a_field() -> None:
    doc = event()
    del doc["call_state"]
    result = decode(raw(doc))
    assert isinstance(result, Rejected) and result.reason == "MISSING_FIELD" and "call_state" in result.detail


def test_pipeline_gives_a_pseudonymised_record_and_no_views() -> None:
    protected = ProtectedNumbers.parse(f"number,owner\n{BANK_NUMBER},bank-a\n")
    transformer = Transformer(PSEUDO, None)
    pipeline = IngestPipeline(transformer, calls=CallTransformer(PSEUDO, protected))
    result = pipeline.process(raw(event(presented_cli="020 123 4567", international=True)), now_ms=None)
    assert result.ok and result.views == [] and result.call is not None
    rec = result.call
    assert rec.subscriber == PSEUDO("msisdn", "+31612345678")          # mt: the B number is ours
    assert rec.counterpart == PSEUDO("msisdn", "+442071234567")
    assert rec.cli == PSEUDO("msisdn", BANK_NUMBER)
    assert (rec.cli_owner, rec.cli_domestic, rec.international) == ("bank-a", True, True)
    assert rec.call != "c1" and len(rec.call) == 32
    wire = encode_call_state(rec)
    for plain in (b"612345678", b"2071234567", b"201234567", b'"c1"'):
        assert plain not in wire
    assert decode_call_state(wire) == rec


def test_a_foreign_cli_is_not_domestic_and_same_cli_is_not_repeated() -> None:
    pipeline = IngestPipeline(Transformer(PSEUDO, None))
    rec = pipeline.process(raw(event()), now_ms=None).call
    assert rec is not None and rec.cli is None and not rec.cli_domestic and rec.cli_owner is None


def test_csv_mapping_of_call_signalling(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    summary = import_cdr(SAMPLES / "call_state_sample.csv", load_mapping(SAMPLES / "call_state_mapping.yaml"), out)
    assert summary.mapped == 5
    assert dict(summary.rejected) == {"UNMAPPED_VALUE": 1, "MISSING_FIELD": 1}
    events = [json.loads(line) for line in out.read_text().splitlines()]
    spoof = events[0]
    assert spoof["type"] == "call_state" and spoof["direction"] == "mt"
    assert spoof["call_state"] == {"call_id": "C100", "state": "started", "presented_cli": "+31201234567",
                                   "international": True, "forwarded": False}
    assert events[2]["call_state"]["duration_s"] == 1581
    assert "duration_s" in events[4]["call_state"] and events[4]["call_state"]["state"] == "ended"
    assert all(not isinstance(decode(json.dumps(e).encode()), Rejected) for e in events)


def test_protected_numbers_refuse_a_bad_row() -> None:
    from services.common.exceptions import ConfigError

    with pytest.raises(ConfigError, match="line 2"):
        ProtectedNumbers.parse("number,owner\nnot-a-number,bank-a\n")
    with pytest.raises(ConfigError, match="header"):
        ProtectedNumbers.parse("nr;owner\n")
    assert ProtectedNumbers.parse("number,owner\n0201234567,bank-a\n").owner_of("+31201234567") == "bank-a"
