import json
import subprocess
import sys
from pathlib import Path

import orjson

from services.common.pseudonym import Discloser, Key, Pseudonymizer
from services.common.records import decode_views, encode
from services.ingest.pipeline import IngestLimits, IngestPipeline
from services.ingest.transform import Transformer

KEY = Key("k1", b"p" * 32)
DKEY = Key("d1", b"d" * 32)
T0 = 1793610000000  # 2026-11-02T09:00:00Z


def pipeline(**limits: int) -> IngestPipeline:
    return IngestPipeline(Transformer(Pseudonymizer(KEY), Discloser(DKEY)), IngestLimits(**limits))


def sms(event_id: str = "e1", **over: object) -> bytes:
    ev = {"event_id": event_id, "operator": "kpn", "type": "sms", "occurred_at": "2026-11-02T10:00:00+01:00",
          "a_number": "0612345678", "b_number": "+31687654321", "direction": "mo",
          "imei": "356938035643809", "imsi": "204081234567890", "cell_id": "ams-0042",
          "sms": {"segments": 1, "has_url": True, "chars": 80}}
    ev.update(over)
    return orjson.dumps(ev)


def test_sms_gives_out_and_in_number_views_and_a_device_view() -> None:
    p = Pseudonymizer(KEY)
    result = pipeline().process(sms(), now_ms=T0)
    assert result.ok
    roles = {(v.entity_type, v.role): v for v in result.views}
    assert set(roles) == {("number", "out"), ("number", "in"), ("device", "out")}
    out, inn, dev = roles["number", "out"], roles["number", "in"], roles["device", "out"]
    assert out.entity == p("msisdn", "+31612345678") and out.peer == p("msisdn", "+31687654321")
    assert inn.entity == out.peer and inn.peer == out.entity
    assert out.device == dev.entity == p("imei", "35693803564380") and dev.tac == "35693803"
    assert dev.number == out.entity and dev.imsi == p("imsi", "204081234567890") and dev.mccmnc == "20408"
    assert out.subscriber and not inn.subscriber and inn.device is None
    assert out.occurred_ms == T0 and out.sms is not None and out.sms.has_url
    assert Discloser(DKEY).open(out.number_enc or "", out.entity) == "+31612345678"


def test_mt_direction_puts_the_device_on_the_recipient() -> None:
    views = pipeline().process(sms(direction="mt"), now_ms=T0).views
    roles = {(v.entity_type, v.role): v for v in views}
    assert ("device", "in") in roles
    assert roles["number", "in"].device == roles["device", "in"].entity
    assert roles["number", "out"].device is None


def test_sim_change_gives_a_change_view() -> None:
    raw = orjson.dumps({"event_id": "s1", "operator": "odido", "type": "sim", "occurred_at": "2026-11-02T09:00:00Z",
                        "sim": {"change": "swap", "msisdn": "0612345678", "imsi": "204161111111111",
                                "imei": "490154203237518"}})
    views = pipeline().process(raw, now_ms=T0).views
    assert [(v.entity_type, v.role) for v in views] == [("number", "change"), ("device", "change")]
    assert views[0].sim is not None and views[0].sim.change == "swap" and views[0].mccmnc == "20416"


def test_forwarding_and_subscription_give_one_change_view_on_the_number() -> None:
    fwd = orjson.dumps({"event_id": "f1", "operator": "kpn", "type": "forwarding",
                        "occurred_at": "2026-11-02T09:00:00Z",
                        "imei": "490154203237518",
                        "forwarding": {"action": "set", "kind": "busy", "msisdn": "0612345678"}})
    sub = orjson.dumps({"event_id": "u1", "operator": "kpn", "type": "subscription",
                        "occurred_at": "2026-11-02T09:00:00Z",
                        "subscription": {"change": "new", "msisdn": "+31612345678", "contract": "PAYG"}})
    p = pipeline()
    (f,) = p.process(fwd, now_ms=T0).views
    (u,) = p.process(sub, now_ms=T0).views
    assert f.entity == u.entity and (f.entity_type, f.role, u.role) == ("number", "change", "change")
    assert f.forwarding is not None and (f.forwarding.action, f.forwarding.kind) == ("set", "busy")
    assert f.sim is None and f.device is None and f.number_enc is not None
    assert u.subscription is not None and (u.subscription.change, u.subscription.contract) == ("new", "PAYG")
    assert "0612345678" not in encode(f).decode() and "612345678" not in encode(u).decode()


def test_view_ids_are_deterministic_across_processes() -> None:
    a = [v.view_id for v in pipeline().process(sms(), now_ms=T0).views]
    b = [v.view_id for v in pipeline().process(sms(), now_ms=T0 + 5000).views]
    assert a == b and len(set(a)) == 3


def test_views_carry_no_plaintext_identifiers() -> None:
    for v in pipeline().process(sms(), now_ms=T0).views:
        text = encode(v).decode()
        for needle in ("612345678", "687654321", "356938035643809", "35693803564380", "204081234567890", "ams-0042"):
            assert needle not in text
        assert decode_views(encode(v)) == [v]


def test_duplicates_within_the_window_are_recognised() -> None:
    p = pipeline(dedupe_window=2)
    assert p.process(sms("a"), T0).ok
    assert p.process(sms("a"), T0).duplicate
    assert p.process(sms("a", operator="vodafoneziggo"), T0).ok  # unique per operator
    p.process(sms("b"), T0)
    p.process(sms("c"), T0)
    assert p.process(sms("a"), T0).ok  # fell out of the bounded window


def test_future_events_are_dead_lettered_and_late_ones_flagged() -> None:
    p = pipeline(max_future_ms=60_000, max_lateness_ms=3_600_000)
    future = p.process(sms("f"), now_ms=T0 - 120_000)
    assert future.reason == "FUTURE_EVENT"
    late = p.process(sms("l"), now_ms=T0 + 7_200_000)
    assert late.ok and late.late and all(v.late for v in late.views)
    assert p.process(sms("r"), now_ms=None).ok  # replays: no wall-clock bounds


def test_validate_cli_json_and_exit_codes(tmp_path: Path) -> None:
    good, bad = sms("1").decode(), sms("2", imei="12").decode()
    f = tmp_path / "export.jsonl"
    f.write_text("\n".join([good, bad, "{oops", good.replace('"1"', '"3"')]) + "\n")
    cmd = [sys.executable, "-m", "services.cli", "validate"]
    out = subprocess.run([*cmd, str(f), "--json"], capture_output=True, text=True, check=False)
    assert out.returncode == 1
    assert json.loads(out.stdout) == {"valid": 2, "invalid": 2, "reasons": {"INVALID_IMEI": 1, "INVALID_JSON": 1}}
    human = subprocess.run([*cmd, str(f)], capture_output=True, text=True, check=False)
    assert "2 valid, 2 invalid" in human.stdout and "line 2: INVALID_IMEI" in human.stdout
    ok = tmp_path / "ok.jsonl"
    ok.write_text(good + "\n")
    assert subprocess.run([*cmd, str(ok)], capture_output=True, check=False).returncode == 0
    missing = subprocess.run([*cmd, str(tmp_path / "nope.jsonl")], capture_output=True, check=False)
    assert missing.returncode == 2


def test_a_rolled_back_commit_forgets_its_event_ids_and_keeps_the_committed_ones() -> None:
    """An aborted transaction's events come again from the committed offsets: they must not be
    taken for duplicates (they would be lost); events committed before stay remembered."""
    p = pipeline(dedupe_window=10)
    assert p.process(sms("a"), T0).ok
    p.duplicates.commit()
    assert p.process(sms("b"), T0).ok
    p.duplicates.rollback()
    assert p.process(sms("b"), T0).ok          # redone after the abort: not a duplicate
    assert p.process(sms("a"), T0).duplicate   # committed before the abort: still one
    p.duplicates.rollback()
    assert p.process(sms("b"), T0).ok
