"""fraudradar simulate-calls: valid contract events, the spoof scenario and its look-alikes, worlds per seed."""

from __future__ import annotations

import json
from pathlib import Path

from services.devtools.simulator.calls import CALL_RANGES, draw_world, main, simulate_calls
from services.ingest.decode import Rejected, decode

START = 1_767_225_600_000
HOUR = 3_600_000


def test_every_event_is_valid_and_each_call_has_its_steps_in_order() -> None:
    sim = simulate_calls(500, 2 * HOUR, seed=4, start_ms=START)
    steps: dict[str, list[str]] = {}
    times = []
    for e in sim.events:
        decoded = decode(json.dumps(e).encode())
        assert not isinstance(decoded, Rejected), (e, decoded)
        steps.setdefault(e["call_state"]["call_id"], []).append(e["call_state"]["state"])
        times.append(decoded.occurred_ms)
    assert times == sorted(times)
    assert all(s in (["started", "answered", "ended"], ["started", "ended"]) for s in steps.values())


def test_scenario_and_look_alikes_are_labelled_with_the_payment_inside_the_call() -> None:
    sim = simulate_calls(2000, 6 * HOUR, seed=9, start_ms=START)
    kinds = {t["scenario"] for t in sim.truth}
    assert kinds == {"spoofed_bank_cli", "bank_contact_centre", "normal_long_call", "forwarded_call"}
    by_id = {e["call_state"]["call_id"]: e for e in sim.events if e["call_state"]["state"] == "started"}
    bank_numbers = {n for n, _ in sim.protected}
    announced = {(a["calling_number"], a["called_number"]) for a in sim.announcements}
    for t in sim.truth:
        assert t["answered_ms"] < t["pay_ms"] < t["ended_ms"]
        first = by_id[t["call_id"]]
        cs = first["call_state"]
        if t["scenario"] == "spoofed_bank_cli":
            assert t["risky"] and cs["presented_cli"] in bank_numbers
            assert (cs["presented_cli"], first["b_number"]) not in announced
        elif t["scenario"] == "bank_contact_centre":
            assert not t["risky"] and first["a_number"] in bank_numbers
            # announced, or (the hard case) from abroad without announcement
            assert ((first["a_number"], first["b_number"]) in announced) != cs["international"]
        elif t["scenario"] == "forwarded_call":
            assert cs["forwarded"] and cs["international"] and first["a_number"].startswith("+31")


def test_worlds_differ_by_seed_and_stay_in_their_ranges() -> None:
    a, b = draw_world(1), draw_world(2)
    assert a.params != b.params
    assert draw_world(1).params == a.params
    for world in (a, b):
        for name, (low, high) in CALL_RANGES.items():
            assert low <= world.params[name] <= high


def test_command_writes_its_files(tmp_path: Path) -> None:
    assert main(["--subscribers", "300", "--duration", "1h", "--seed", "2", "--out", str(tmp_path), "--quiet"]) == 0
    for name in ("call_events.jsonl", "call_truth.jsonl", "announcements.jsonl", "protected_numbers.csv",
                 "call_world.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "protected_numbers.csv").read_text().startswith("number,owner\n")


def test_backtest_reports_the_spoof_scenario_like_the_others() -> None:
    from services.devtools.simulator.call_backtest import backtest, sweep

    sim = simulate_calls(2000, 6 * HOUR, seed=0, start_ms=START)
    result = backtest(sim)
    domestic_spoofs = sum(1 for t in sim.truth if t["scenario"] == "spoofed_bank_cli"
                          and not next(e for e in sim.events if e["call_state"]["call_id"] == t["call_id"])
                          ["call_state"]["international"])
    # the route rule catches every spoof from abroad and misses exactly the domestic ones
    assert result["victims_before_alert"] == domestic_spoofs
    assert result["recall"] == (result["spoofs"] - domestic_spoofs) / result["spoofs"]
    assert result["negatives_flagged"]["normal_long_call"]["flagged"] == 0
    assert result["negatives_flagged"]["forwarded_call"]["flagged"] == 0
    worst = sweep([0, 1], 500, 2 * HOUR, START)["worst"]
    assert set(worst) == {"recall", "precision", "victims_before_alert"}
