"""The simulator: determinism, the contract, and each scenario's signature in the events."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from services.devtools.simulator import catalog
from services.devtools.simulator.cli import main
from services.devtools.simulator.scenarios import instances_per_scenario
from services.ingest.decode import decode

ROOT = Path(__file__).resolve().parents[3]


def _simulate(out: Path, *extra: str) -> None:
    """The fixed reference world: the scenario signatures below are checked on it (and the
    randomised worlds in tests/devtools/simulator/test_worlds.py)."""
    assert main(["--subscribers", "5000", "--duration", "12h", "--seed", "11", "--out", str(out), "--quiet",
                 "--world", "fixed", *extra]) == 0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sim")
    _simulate(out)
    events = [orjson.loads(line) for line in (out / "events.jsonl").read_bytes().splitlines()]
    rows = [orjson.loads(line) for line in (out / "truth.jsonl").read_bytes().splitlines()]
    truth = [t for t in rows if t.get("label", "fraud") == "fraud"]
    negatives = [t for t in rows if t.get("label") == "negative"]
    return {"dir": out, "events": events, "truth": truth, "negatives": negatives}


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _e164(number: str) -> str:
    return "+31" + number[1:] if number.startswith("0") else number


def _truth(run: dict[str, Any], scenario: str, entity_type: str) -> list[dict[str, Any]]:
    return [t for t in run["truth"] if t["scenario"] == scenario and t["entity_type"] == entity_type]


def _imei14(text: str) -> str:
    return text[:14]


# --- determinism and contract -------------------------------------------------------------------

def test_same_seed_same_bytes(tmp_path: Path, run: dict[str, Any]) -> None:
    _simulate(tmp_path / "again")
    for name in ("events.jsonl", "truth.jsonl"):
        assert (tmp_path / "again" / name).read_bytes() == (run["dir"] / name).read_bytes()


def test_other_seed_other_traffic(tmp_path: Path) -> None:
    assert main(["--subscribers", "1000", "--duration", "2h", "--seed", "1", "--out", str(tmp_path / "a"),
                 "--quiet"]) == 0
    assert main(["--subscribers", "1000", "--duration", "2h", "--seed", "2", "--out", str(tmp_path / "b"),
                 "--quiet"]) == 0
    assert (tmp_path / "a" / "events.jsonl").read_bytes() != (tmp_path / "b" / "events.jsonl").read_bytes()


def test_events_follow_the_schema_and_ingest_accepts_them(run: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "services/common/schemas/raw_event_v1.json").read_text())
    validator = jsonschema_rs.validator_for(schema)
    lines = (run["dir"] / "events.jsonl").read_bytes().splitlines()
    sample = lines[:: max(1, len(lines) // 3000)]
    for line in sample:
        event = orjson.loads(line)
        assert validator.is_valid(event), (event, [e.message for e in validator.iter_errors(event)])
        assert not hasattr(decode(line), "reason"), line
        assert "text" not in event and "body" not in (event.get("sms") or {})


def test_events_in_event_time_order_with_unique_ids(run: dict[str, Any]) -> None:
    times = [_ms(e["occurred_at"]) for e in run["events"]]
    assert times == sorted(times)
    ids = Counter((e["operator"], e["event_id"]) for e in run["events"])
    assert max(ids.values()) == 1


def test_contract_variety(run: dict[str, Any]) -> None:
    events = run["events"]
    assert {e["operator"] for e in events} == set(catalog.OPERATORS)
    assert {e["type"] for e in events} == {"sms", "call", "sim", "forwarding", "subscription"}
    line_events = [e for e in events if e["type"] in ("forwarding", "subscription")]
    for line in (orjson.dumps(e) for e in line_events):
        assert not hasattr(decode(line), "reason"), line
    assert {e["forwarding"]["kind"] for e in line_events if e["type"] == "forwarding"} >= {"no_answer", "busy"}
    assert any(e["occurred_at"].endswith("Z") for e in events)
    assert any(e["occurred_at"].endswith("+01:00") for e in events)
    numbers = [e["a_number"] for e in events if "a_number" in e]
    assert any(n.startswith("06") for n in numbers), "national format numbers"
    assert any(n in catalog.A2P_SHORT_CODES for n in numbers) and any(n == "PostNL" for n in numbers)
    imeis = [e["imei"] for e in events if "imei" in e]
    assert any(len(i) == 16 for i in imeis), "IMEISV"
    for imei in {i for i in imeis if len(i) == 15}:
        assert catalog.luhn_check_digit(imei[:14]) == imei[14]
    assert all(e["imsi"][:3] in ("204", "262") for e in events if "imsi" in e)
    changes = {e["sim"]["change"] for e in events if e["type"] == "sim"}
    assert {"swap", "activation", "device_change"} <= changes
    # the device belongs to the reporting side: mt events carry the recipient's device
    device_numbers: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e["type"] in ("sms", "call") and "imei" in e:
            side = e["a_number"] if e["direction"] == "mo" else e["b_number"]
            device_numbers[_imei14(e["imei"])].add(_e164(side))
    assert all(not n.isalpha() for ns in device_numbers.values() for n in ns)


def test_several_instances_per_scenario(run: dict[str, Any]) -> None:
    assert instances_per_scenario(5000) >= 3
    starts: dict[str, set[str]] = defaultdict(set)
    for t in run["truth"]:
        starts[t["scenario"]].add(t["start"])
    assert set(starts) == set(catalog.SCENARIOS)
    for name, s in starts.items():
        assert len(s) >= 3, name
    assert {tuple(sorted(t)) for t in run["truth"]} == {("end", "entity_type", "identifier", "instance", "scenario",
                                                        "start")}
    # every instance is one scenario's, and each scenario has as many instances as start sets
    instances: dict[str, set[str]] = defaultdict(set)
    for t in run["truth"]:
        instances[t["instance"]].add(t["scenario"])
    assert all(len(s) == 1 and next(iter(s)) == name.split("#")[0] for name, s in instances.items())
    for name in catalog.SCENARIOS:
        assert len([i for i in instances if i.startswith(f"{name}#")]) >= 3, name


# --- scenario signatures -------------------------------------------------------------------------

def _device_imsis(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if "imei" in e and "imsi" in e:
            out[_imei14(e["imei"])].add(e["imsi"])
    return out


def test_sim_farm_device_rotates_many_imsis(run: dict[str, Any]) -> None:
    imsis = _device_imsis(run["events"])
    fraud_devices = {_imei14(t["identifier"]) for t in run["truth"] if t["entity_type"] == "device"}
    for t in _truth(run, "sim_farm_device", "device"):
        assert len(imsis[_imei14(t["identifier"])]) >= 10
    normal_max = max(len(v) for k, v in imsis.items() if k not in fraud_devices)
    assert normal_max <= 3, "normal devices: one SIM, dual-SIM or an innocent swap"


def test_sms_farm_blasts_urls_to_strangers(run: dict[str, Any]) -> None:
    events = run["events"]
    for t in _truth(run, "sms_farm", "number"):
        sent = [e for e in events if e["type"] == "sms" and _e164(e["a_number"]) == t["identifier"]]
        assert len(sent) >= 30
        assert sum(e["sms"]["has_url"] for e in sent) / len(sent) > 0.8
        assert len({e["b_number"] for e in sent}) / len(sent) > 0.9   # almost never the same recipient twice
        assert all(e["direction"] == "mo" for e in sent)
    farm_devices = {_imei14(t["identifier"]) for t in _truth(run, "sms_farm", "device")}
    farm_numbers = {t["identifier"] for t in _truth(run, "sms_farm", "number")}
    used = {_imei14(e["imei"]) for e in events if e.get("a_number") and _e164(e["a_number"]) in farm_numbers
            and "imei" in e}
    assert used <= farm_devices and len(farm_devices) <= len(farm_numbers) / 2


def test_sim_box_calls_out_only_from_one_cell(run: dict[str, Any]) -> None:
    events = run["events"]
    imsis = _device_imsis(events)
    for t in _truth(run, "sim_box", "device"):
        imei = _imei14(t["identifier"])
        mine = [e for e in events if "imei" in e and _imei14(e["imei"]) == imei and e["type"] == "call"]
        assert len(mine) >= 100
        assert all(e["direction"] == "mo" for e in mine), "nothing incoming"
        assert len({e["cell_id"] for e in mine}) == 1
        assert len(imsis[imei]) >= 4
    box_numbers = {t["identifier"] for t in _truth(run, "sim_box", "number")}
    incoming = [e for e in events if e.get("b_number") and _e164(e["b_number"]) in box_numbers]
    assert incoming == []


def test_sim_swap_takeover_swap_then_unusual_outgoing(run: dict[str, Any]) -> None:
    events = run["events"]
    for t in _truth(run, "sim_swap_takeover", "number"):
        number, start = t["identifier"], _ms(t["start"])
        swaps = [e for e in events if e["type"] == "sim" and _e164(e["sim"]["msisdn"]) == number
                 and e["sim"]["change"] == "swap"]
        assert any(abs(_ms(e["occurred_at"]) - start) < 1000 for e in swaps)
        new_imsi = swaps[-1]["sim"]["imsi"]
        out_after = [e for e in events if e["type"] in ("sms", "call") and e["direction"] == "mo"
                     and _e164(e["a_number"]) == number and _ms(e["occurred_at"]) >= start]
        out_before = [e for e in events if e["type"] in ("sms", "call") and e["direction"] == "mo"
                      and _e164(e["a_number"]) == number and _ms(e["occurred_at"]) < start]
        assert len(out_after) >= 10 and all(e["imsi"] == new_imsi for e in out_after)
        old_devices = {e["imei"] for e in out_before}
        assert not old_devices & {e["imei"] for e in out_after}, "a new device after the swap"
        otp = [e for e in events if e["type"] == "sms" and e["direction"] == "mt"
               and _e164(e["b_number"]) == number and _ms(e["occurred_at"]) >= start
               and e["a_number"] in catalog.A2P_OTP_SENDERS]
        assert otp


def test_wangiri_one_ring_calls(run: dict[str, Any]) -> None:
    events = run["events"]
    for t in _truth(run, "wangiri", "number"):
        calls = [e for e in events if e["type"] == "call" and e["a_number"] == t["identifier"]]
        assert len({e["b_number"] for e in calls}) >= 100
        assert all(e["direction"] == "mt" for e in calls)
        assert sum(not e["call"]["answered"] for e in calls) / len(calls) > 0.9
        assert max(e["call"]["duration_s"] for e in calls) <= 4
        assert not t["identifier"].startswith("+31")


def test_spoofed_bank_caller_only_inside_its_window(run: dict[str, Any]) -> None:
    events = run["events"]
    windows = {t["identifier"]: (_ms(t["start"]), _ms(t["end"])) for t in _truth(run, "spoofed_bank_caller", "number")}
    assert set(windows) <= catalog.DO_NOT_ORIGINATE
    from_bank = [e for e in events if e["type"] == "call" and _e164(e["a_number"]) in catalog.DO_NOT_ORIGINATE]
    assert len(from_bank) >= 3 * 10
    for e in from_bank:
        lo, hi = windows[_e164(e["a_number"])]
        assert lo <= _ms(e["occurred_at"]) <= hi
        assert e["direction"] == "mt"
    to_bank = [e for e in events if e.get("b_number") and _e164(e["b_number"]) in catalog.DO_NOT_ORIGINATE]
    assert to_bank, "customers call their bank: the numbers are inbound-only, not unused"


def test_slow_low_farm_stays_under_naive_thresholds(run: dict[str, Any]) -> None:
    events = run["events"]
    farm = {t["identifier"] for t in _truth(run, "slow_low_farm", "number")}
    per_hour: Counter[tuple[str, int]] = Counter()
    recipients: dict[str, set[str]] = defaultdict(set)
    urls = total = 0
    for e in events:
        if e["type"] == "sms" and _e164(e["a_number"]) in farm:
            per_hour[(_e164(e["a_number"]), _ms(e["occurred_at"]) // 3_600_000)] += 1
            recipients[_e164(e["a_number"])].add(_e164(e["b_number"]))
            urls += e["sms"]["has_url"]
            total += 1
    assert max(per_hour.values()) <= 20, "below a naive 20-per-hour threshold"
    assert min(len(r) for r in recipients.values()) >= 20
    assert urls / total > 0.5


def test_hard_negatives_present(run: dict[str, Any]) -> None:
    events = run["events"]
    truth_numbers = {t["identifier"] for t in run["truth"] if t["entity_type"] == "number"}
    postnl = [e for e in events if e.get("a_number") == "PostNL"]
    assert len({e["b_number"] for e in postnl}) > 200 and sum(e["sms"]["has_url"] for e in postnl) > 100
    # call centres: many outgoing calls, mostly answered and long, recurring recipients, from normal numbers
    calls_out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["type"] == "call" and e["direction"] == "mo":
            calls_out[_e164(e["a_number"])].append(e)
    busy = [n for n, c in calls_out.items() if len(c) >= 40 and n not in truth_numbers]
    assert busy
    for number in busy:
        c = calls_out[number]
        assert sum(e["call"]["answered"] for e in c) / len(c) > 0.4
    # group chats: one sender, the same recipients again and again within seconds
    sms_pairs = Counter((_e164(e["a_number"]), _e164(e["b_number"])) for e in events
                        if e["type"] == "sms" and e["direction"] == "mo")
    assert max(sms_pairs.values()) >= 10


# --- hard negatives ------------------------------------------------------------------------------

def test_innocent_swaps_include_a_new_phone_and_bank_codes_like_a_takeover() -> None:
    """The takeover's signature (swap, a new phone, one-time codes) also happens to honest people."""
    import numpy as np

    from services.devtools.simulator.identity import (
        LOST_PHONE_SHARE,
        REENROL_SHARE,
        identity_changes,
        otp_sender_numbers,
    )
    from services.devtools.simulator.population import build_population
    from services.devtools.simulator.timeline import HOUR_MS, Timeline, parse_start
    from services.devtools.simulator.world import CHANGE_CODE, SMS, World

    world = World(np.random.default_rng(5))
    world.build_cells(40)
    pop = build_population(world, 5000, np.random.default_rng(6))
    tl = Timeline(parse_start("2025-03-04T00:00:00+01:00"), 30 * 24 * HOUR_MS)
    scene = identity_changes(world, tl, pop, np.random.default_rng(7))
    sims = next(b for b in scene.batches if (b.change >= 0).all())
    swaps = {int(line): int(t) for line, t, c in zip(sims.line, sims.t, sims.change, strict=True)
             if c == CHANGE_CODE["swap"]}
    assert len(swaps) > 100
    assert (sims.sim_imei[sims.change == CHANGE_CODE["swap"]] == -1).all(), "a swap record names no phone"
    with_phone = {c.line for c in scene.changes if c.line in swaps and c.imei >= 0 and c.imsi >= 0}
    assert abs(len(with_phone) / len(swaps) - LOST_PHONE_SHARE) < 0.12
    otp_senders = set(otp_sender_numbers(world).tolist())
    codes = next(b for b in scene.batches if b.kind[0] == SMS)
    assert set(codes.a.tolist()) <= otp_senders and not codes.mo.any() and not codes.url.any()
    reached = {int(line) for line, t in zip(codes.line, codes.t, strict=True)
               if int(line) in swaps and 0 < int(t) - swaps[int(line)] <= 2 * HOUR_MS}
    assert abs(len(reached) / len(swaps) - REENROL_SHARE) < 0.12
    assert reached & with_phone, "some honest people get bank codes on a new SIM in a new phone"
