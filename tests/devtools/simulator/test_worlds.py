"""Randomised worlds: parameters drawn per seed inside documented ranges, labelled hard negatives,
the backtest's view of them, and the sweep over worlds."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from services.devtools.simulator import catalog
from services.devtools.simulator.cli import main as simulate_main
from services.devtools.simulator.params import RANGES, fixed_world, random_world
from services.ingest.decode import decode

ROOT = Path(__file__).resolve().parents[3]

# every class of labelled normal entity a randomised world holds
NEGATIVE_CLASSES = {
    "a2p_sender", "a2p_marketing", "business_modem", "bulk_sms_phone", "call_centre", "iot_fleet",
    "group_chat", "group_organiser", "tourist", "roamer", "dual_sim", "family_phone", "device_changer",
    "lost_phone", "owner_sim_swap", "new_activation", "traveller", "otp_receiver",
}
# classes a small world may hold none of (a few owner swaps, a share of them lost on a trip)
RARE_CLASSES = {"lost_phone_away"}


def _in_range(name: str, value: float) -> bool:
    lo, hi = RANGES[name]
    return lo <= value <= hi


def test_two_seeds_two_worlds_inside_the_documented_ranges() -> None:
    a, b = random_world(1), random_world(2)
    docs = (ROOT / "docs/simulator.md").read_text()
    differing = 0
    for f in fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        differing += va != vb
        if f.name in RANGES and f.name != "fraud_intensity":
            assert f"`{f.name}`" in docs, f"{f.name} is not documented in docs/simulator.md"
            for v in (va, vb):
                if isinstance(v, tuple):   # an integer sub-range [low, high] of the documented range
                    assert _in_range(f.name, v[0]) and _in_range(f.name, v[1]) and v[0] < v[1], (f.name, v)
                else:
                    assert _in_range(f.name, float(v)), (f.name, v)
    assert differing >= 30, "another seed is another world, not the same world re-rolled"
    for w in (a, b):
        assert all(_in_range("fraud_intensity", v) for v in w.fraud_intensity.values())
        assert set(w.fraud_intensity) == set(catalog.SCENARIOS)
        assert abs(sum(w.operator_shares) - 1.0) < 1e-9
        names = [s.name for s in w.a2p_senders]
        assert len(set(names)) == len(names) and all(1 <= len(n) <= 11 for n in names)
        assert any(not n.isdigit() for n in names) and any(n.isdigit() for n in names)
        assert w.otp_senders(), "every world has one-time-code senders"
    # the sender names are drawn, not a fixed list
    assert {s.name for s in a.a2p_senders}.isdisjoint({s.name for s in b.a2p_senders})
    assert not {s.name for s in a.a2p_senders} & set(catalog.A2P_SENDERS)
    # the same seed, the same world
    assert random_world(1) == a
    # the fixed world is the reference world (today's constants)
    fixed = fixed_world(7)
    assert fixed.a2p_senders and {s.name for s in fixed.a2p_senders} == set(catalog.A2P_SENDERS)
    assert fixed.otp_senders() == catalog.A2P_OTP_SENDERS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("world")
    assert simulate_main(["--subscribers", "3000", "--duration", "24h", "--seed", "4", "--out", str(out),
                          "--quiet"]) == 0
    rows = [orjson.loads(line) for line in (out / "truth.jsonl").read_bytes().splitlines()]
    return {"dir": out, "truth": [r for r in rows if "label" not in r],
            "negatives": [r for r in rows if r.get("label") == "negative"],
            "world": orjson.loads((out / "world.json").read_bytes())}


def test_every_negative_class_is_generated_and_labelled(world: dict[str, Any]) -> None:
    classes = {r["class"] for r in world["negatives"]}
    assert NEGATIVE_CLASSES <= classes <= NEGATIVE_CLASSES | RARE_CLASSES
    fraud = {(t["entity_type"], t["identifier"]) for t in world["truth"]}
    assert not fraud & {(r["entity_type"], r["identifier"]) for r in world["negatives"]}
    assert world["world"]["world"]["kind"] == "random" and world["world"]["seed"] == 4
    # each labelled number is in the traffic: as a_number (senders, callers) or b_number
    seen: set[str] = set()
    kinds: dict[str, set[str]] = {}
    for line in (world["dir"] / "events.jsonl").read_bytes().splitlines():
        e = orjson.loads(line)
        for side in ("a_number", "b_number"):
            if side in e:
                n = e[side]
                seen.add("+31" + n[1:] if n.startswith("0") else n)
        if "imei" in e:
            seen.add(e["imei"][:14])
        if "imsi" in e and e.get("a_number", "").startswith("+3197"):
            kinds.setdefault("iot_mccmnc", set()).add(e["imsi"][:5])
    for r in world["negatives"]:
        ident = r["identifier"] if r["entity_type"] == "number" else r["identifier"][:14]
        assert ident in seen, r
    # tourists come from several countries, with their home networks' IMSIs
    tourists = [r["identifier"] for r in world["negatives"] if r["class"] == "tourist"]
    assert len({t[:3] for t in tourists}) >= 2
    # IoT SIMs are Dutch M2M numbers (097)
    iot = [r["identifier"] for r in world["negatives"] if r["class"] == "iot_fleet" and r["entity_type"] == "number"]
    assert iot and all(n.startswith("+3197") for n in iot)


def test_random_world_events_follow_the_contract(world: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "services/common/schemas/raw_event_v1.json").read_text())
    validator = jsonschema_rs.validator_for(schema)
    lines = (world["dir"] / "events.jsonl").read_bytes().splitlines()
    for line in lines[:: max(1, len(lines) // 4000)]:
        event = orjson.loads(line)
        assert validator.is_valid(event), (event, [e.message for e in validator.iter_errors(event)])
        assert not hasattr(decode(line), "reason"), line


def test_fixed_world_keeps_the_reference_traffic(tmp_path: Path) -> None:
    """``--world fixed`` is the reference world: its events do not depend on the new classes."""
    for kind in ("fixed", "random"):
        assert simulate_main(["--subscribers", "800", "--duration", "2h", "--seed", "7", "--out",
                              str(tmp_path / kind), "--quiet", "--world", kind]) == 0
    fixed = (tmp_path / "fixed" / "events.jsonl").read_bytes()
    assert b'"a_number":"PostNL"' in fixed and b"+3197" not in fixed
    assert fixed != (tmp_path / "random" / "events.jsonl").read_bytes()
    truth = (tmp_path / "fixed" / "truth.jsonl").read_bytes().splitlines()
    classes = {orjson.loads(line).get("class") for line in truth}
    assert {"a2p_sender", "call_centre", "tourist"} <= classes and "iot_fleet" not in classes


def test_link_flagged_numbers_have_a_recorded_maximum(tmp_path: Path) -> None:
    """A number flagged through its device (ON_FLAGGED_DEVICE) gets its alert's score as its maximum,
    so ROC/PR AUC and the score histogram see it (not score 0)."""
    from services.devtools.simulator.backtest import backtest_pseudonymizer, default_engine, load_truth, replay

    out = tmp_path / "sim"
    assert simulate_main(["--subscribers", "3000", "--duration", "6h", "--seed", "1", "--out", str(out),
                          "--quiet"]) == 0
    pseudo = backtest_pseudonymizer()
    truth = load_truth(out / "truth.jsonl", pseudo)
    result = replay(out / "events.jsonl", default_engine(pseudo, None), pseudo, truth, alerts_out=tmp_path / "a.jsonl",
                    quiet=True)
    linked = [a for a in map(orjson.loads, (tmp_path / "a.jsonl").read_bytes().splitlines())
              if any(r["code"] == "ON_FLAGGED_DEVICE" for r in a["reasons"])]
    assert linked, "the world has numbers flagged through their device"
    for a in linked:
        assert result.max_scores.get((a["entity_type"], a["entity"]), -1) >= a["score"] > 0, a["reasons"]
    for a in map(orjson.loads, (tmp_path / "a.jsonl").read_bytes().splitlines()):
        assert result.max_scores.get((a["entity_type"], a["entity"]), -1) >= a["score"]
    # the victims of every truth number that sent or called are recorded
    assert any(result.contacts.get(t.key) for t in truth)


def test_sweep_end_to_end_reports_the_worst_world(tmp_path: Path) -> None:
    from services.devtools.simulator.sweep import main as sweep_main

    out = tmp_path / "sweep"
    assert sweep_main(["--worlds", "3", "--subscribers", "500", "--duration", "1h", "--seed-base", "40",
                       "--warmup", "3h", "--jobs", "2", "--out", str(out), "--quiet"]) == 0
    doc = orjson.loads((out / "sweep.json").read_bytes())
    assert [w["seed"] for w in doc["worlds"]] == [40, 41, 42]
    assert len({orjson.dumps(w["world"]["a2p_senders"]) for w in doc["worlds"]}) == 3, "three different worlds"
    metrics = doc["summary"]["metrics"]
    by_seed = {w["seed"]: w["metrics"] for w in doc["worlds"]}
    fa = metrics["false_alarms_per_100k_per_day"]
    assert fa["worst"] == max(m["overall"]["false_alarms_per_100k_per_day"] for m in by_seed.values())
    assert by_seed[fa["worst_seed"]]["overall"]["false_alarms_per_100k_per_day"] == fa["worst"]
    precision = metrics["precision"]
    assert precision["worst"] == min(m["overall"]["precision"] for m in by_seed.values())
    for name in catalog.SCENARIOS:
        for key in ("recall", "victims_before_alert_median", "ttd_median_s"):
            assert f"{name}.{key}" in metrics
    # hard-negative classes: flagged in how many worlds, consistent with the worlds' own metrics
    for cls, c in doc["summary"]["hard_negatives"].items():
        flagged = [w["seed"] for w in doc["worlds"]
                   if w["metrics"]["hard_negatives"]["classes"].get(cls, {}).get("flagged")]
        assert c["seeds_flagged"] == flagged and c["worlds_flagged"] == len(flagged)
    md = (out / "sweep.md").read_text()
    assert "Worst world per metric" in md and "simulated worlds" in md and "evaluate-table" in md
    # the warm-up is stated where the report says what it is, and its alerts are reported apart
    what = md.split("\n\n")[1]
    assert what.startswith("What this is") and "`--warmup 3h`" in what and "cold start" in what
    assert doc["config"]["warmup"] == "3h" and "## Cold start" in md
    for w in doc["worlds"]:
        assert 2.9 < w["metrics"]["cold_start"]["warmup_hours"] <= 3
    html = (out / "report.html").read_text()
    for png in ("sweep_quality.png", "sweep_false_alarms.png", "sweep_victims.png", "sweep_ttd.png",
                "sweep_hard_negatives.png"):
        assert (out / png).stat().st_size > 1000 and png in html
    # each world's outputs stay, its raw events do not
    assert (out / "worlds" / "seed-41" / "backtest" / "metrics.json").exists()
    assert not (out / "worlds" / "seed-41" / "events.jsonl").exists()
