"""CSV CDR import with the shipped sample mapping: good rows map, bad rows are reported with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from services.ingest.cdr_import import main
from services.ingest.decode import decode

SAMPLES = Path(__file__).resolve().parents[2] / "services/ingest/samples"


def test_sample_mapping_with_bad_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "events.jsonl"
    code = main([str(SAMPLES / "cdr_sample.csv"), "--mapping", str(SAMPLES / "cdr_mapping.yaml"), "--out", str(out),
                 "--json"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"valid": 8, "invalid": 8, "reasons": {
        "BAD_TIMESTAMP": 1, "DUPLICATE": 1, "INVALID_IMEI": 1, "INVALID_NUMBER": 1, "MISSING_FIELD": 1,
        "UNMAPPED_VALUE": 2, "WRONG_TYPE": 1}}
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(events) == 8
    for line in out.read_bytes().splitlines():
        assert not hasattr(decode(line), "reason")
    by_id = {e["event_id"]: e for e in events}
    first = by_id["K0001"]
    assert first["type"] == "call" and first["direction"] == "mo"
    assert first["occurred_at"] == "2025-03-04T09:15:02.000+01:00"
    assert first["call"] == {"duration_s": 184, "answered": True}
    assert by_id["K0002"]["call"]["answered"] is False and by_id["K0002"]["direction"] == "mt"
    assert by_id["K0004"]["sms"] == {"segments": 1, "has_url": True, "chars": 131}
    assert by_id["K0006"]["sim"] == {"change": "swap", "msisdn": "+31612345678", "imsi": "204089999999999"}
    assert "direction" not in by_id["K0006"]
    assert by_id["K0016"]["occurred_at"].endswith("+02:00"), "summer time after the DST change"


def test_human_summary_names_lines_and_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(SAMPLES / "cdr_sample.csv"), "--mapping", str(SAMPLES / "cdr_mapping.yaml"),
          "--out", str(tmp_path / "e.jsonl")])
    text = capsys.readouterr().out
    assert "line 9: UNMAPPED_VALUE" in text and "'FWD'" in text
    assert "line 10: BAD_TIMESTAMP" in text
    assert "line 15: DUPLICATE" in text


def test_bad_mapping_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("operator: {constant: kpn}\ntype: {column: t}\n")
    assert main([str(SAMPLES / "cdr_sample.csv"), "--mapping", str(mapping), "--out", str(tmp_path / "o")]) == 2
    assert "timestamp" in capsys.readouterr().err


def test_forwarding_and_subscription_rows_map_onto_the_contract(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "ss.csv"
    csv.write_text(
        "cdr_id;record_type;start_time;calling_number;ss_code;contract_type\n"
        "S1;SS-ACT;04-03-2025 09:15:02;0612345678;21;\n"
        "S2;SS-DEACT;04-03-2025 09:20:00;0612345678;62;\n"
        "S3;SUB-NEW;04-03-2025 09:00:00;0612345678;;PRE\n"
        "S4;SUB-CEASE;04-03-2025 10:00:00;0612345678;;\n"
        "S5;SS-ACT;04-03-2025 10:15:00;0612345678;99;\n", encoding="utf-8")
    out = tmp_path / "events.jsonl"
    assert main([str(csv), "--mapping", str(SAMPLES / "cdr_mapping.yaml"), "--out", str(out), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"valid": 4, "invalid": 1, "reasons": {"UNMAPPED_VALUE": 1}}
    by_id = {e["event_id"]: e for e in map(orjson.loads, out.read_bytes().splitlines())}
    assert by_id["S1"]["forwarding"] == {"action": "set", "kind": "unconditional", "msisdn": "0612345678"}
    assert by_id["S2"]["forwarding"]["kind"] == "not_reachable" and by_id["S2"]["forwarding"]["action"] == "cleared"
    assert by_id["S3"]["subscription"] == {"change": "new", "msisdn": "0612345678", "contract": "PAYG"}
    assert by_id["S4"]["subscription"] == {"change": "ceased", "msisdn": "0612345678"}
    for line in out.read_bytes().splitlines():
        assert not hasattr(decode(line), "reason")
