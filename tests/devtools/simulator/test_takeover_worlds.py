"""SIM-swap takeovers of randomised worlds and their look-alikes: each world's fraudsters work
their own way (drawn per seed), the victim's line lives on the fraudster's cell from the swap on,
and the world's sender-ID registry goes with the run so that the scorer reads one-time-code
categories from it (never from a list of names)."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml

from services.devtools.simulator import generate
from services.devtools.simulator.backtest import _with_world_registry
from services.devtools.simulator.cli import main as simulate_main
from services.devtools.simulator.generate import SimConfig, simulate
from services.devtools.simulator.params import _LATER, RANGES, random_world
from services.devtools.simulator.timeline import DEFAULT_START, parse_start
from services.devtools.simulator.world import CHANGE_CODE, SIM, SMS

TAKEOVER = ("takeover_new_device_share", "takeover_first_act_minutes", "takeover_codes_share", "takeover_link_share",
            "takeover_contact_share", "traveller_share", "lost_away_share", "takeover_forwarding_share")


def test_each_world_draws_its_own_takeovers_inside_the_ranges() -> None:
    worlds = [random_world(seed) for seed in range(6)]
    for name in TAKEOVER:
        values = [getattr(w, name) for w in worlds]
        lo, hi = RANGES[name]
        assert all(lo <= v <= hi for v in values), name
        assert len(set(values)) == len(values), f"{name} is the same in two worlds"
    # some worlds' fraudsters send (almost) no links: detection may not need them
    assert min(w.takeover_link_share for w in [random_world(s) for s in range(40)]) < 0.1


def _sim(seed: int) -> object:
    return simulate(SimConfig(subscribers=3000, duration_ms=6 * 3_600_000, seed=seed,
                              start_ms=parse_start(DEFAULT_START), world="random",
                              scenarios=("sim_swap_takeover",)))


def test_the_victims_line_is_on_the_fraudsters_cell_and_phone_from_the_swap_on() -> None:
    _victims_line_is_the_fraudsters(_sim(11))


def _victims_line_is_the_fraudsters(sim: object) -> None:
    w, ev = sim.world, sim.events          # type: ignore[attr-defined]
    victims = {t.identifier: t for t in sim.truth}   # type: ignore[attr-defined]
    assert len(victims) == 2          # instances_per_scenario(3000)
    for number, truth in victims.items():
        index = w.numbers.index(number)
        line = int(np.flatnonzero(w.line_number == index)[0])
        mine = (ev.line == line) & (ev.t >= truth.start_ms)
        swap = mine & (ev.kind == SIM) & (ev.change == CHANGE_CODE["swap"])
        assert swap.sum() == 1
        after = mine & (ev.t > truth.start_ms)
        cells = set(sim.cell[after].tolist())          # type: ignore[attr-defined]
        assert cells == set(sim.cell[swap].tolist()), "every event of the line after the swap is on one cell"
        assert len(set(sim.imei[after].tolist())) == 1  # type: ignore[attr-defined]
        # before the swap the line was elsewhere (its home/work cells)
        before = (ev.line == line) & (ev.t < truth.start_ms)
        assert not cells & set(sim.cell[before].tolist())  # type: ignore[attr-defined]
        # only the fraudster acts from then on: the victim's own traffic has stopped
        assert (ev.mo[after] & (ev.kind[after] == SMS)).sum() >= 2


def test_the_world_registry_goes_with_the_run_and_into_the_backtest_policy(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert simulate_main(["--subscribers", "600", "--duration", "1h", "--seed", "5", "--out", str(out),
                          "--quiet"]) == 0
    rows = list(csv.DictReader(io.StringIO((out / "registry.csv").read_text())))
    world = orjson.loads((out / "world.json").read_bytes())["world"]
    assert {r["sender_id"] for r in rows} == {s["name"] for s in world["a2p_senders"]}
    by_name = {s["name"]: s for s in world["a2p_senders"]}
    for r in rows:
        sender = by_name[r["sender_id"]]
        want = "otp" if sender["otp"] and sender["name"].isdigit() else sender["category"]
        assert r["category"] == want
    policy = _with_world_registry(out / "truth.jsonl", tmp_path, None)
    assert policy == tmp_path / "policy.yaml"
    assert yaml.safe_load(policy.read_text())["sender_registry"]["path"] == str((out / "registry.csv").resolve())
    # a policy naming its own registry keeps it; a run without a registry keeps the policy
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump({**yaml.safe_load(policy.read_text()), "sender_registry": {"path": "x.csv"}}))
    assert _with_world_registry(out / "truth.jsonl", tmp_path, own) == own
    (out / "registry.csv").unlink()
    assert _with_world_registry(out / "truth.jsonl", tmp_path, None) is None


def test_a_sweep_scores_with_the_policy_it_is_given(tmp_path: Path) -> None:
    # --policy: e.g. the policy without a rule family, to measure what the family adds
    from importlib import resources

    from services.devtools.simulator.sweep import main as sweep_main

    doc = yaml.safe_load(resources.files("services.scorer").joinpath("policy.yaml").read_text())
    doc["version"] = "9999.1.1-variant"
    doc["rules"]["number"] = [r for r in doc["rules"]["number"] if not r["code"].startswith("ACCOUNT_TAKEOVER")]
    policy = tmp_path / "variant.yaml"
    policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "sweep"
    assert sweep_main(["--worlds", "1", "--subscribers", "400", "--duration", "30m", "--seed-base", "3",
                       "--policy", str(policy), "--out", str(out), "--quiet"]) == 0
    world = orjson.loads((out / "sweep.json").read_bytes())["worlds"][0]
    assert world["metrics"]["model_version"].startswith("9999.1.1-variant")
    # the world's registry went in through a copy of the given policy
    copied = yaml.safe_load((out / "worlds" / "seed-3" / "backtest" / "policy.yaml").read_text())
    assert copied["version"] == "9999.1.1-variant"
    assert copied["sender_registry"]["path"].endswith("seed-3/registry.csv")


def _victim_forwardings(sim: object) -> list[list[float]]:
    """Minutes from each takeover's swap to the unconditional forwardings set on its line."""
    w, ev = sim.world, sim.events          # type: ignore[attr-defined]
    fwd = (ev.kind == SIM) & (ev.change == CHANGE_CODE["forwarding:set:unconditional"])
    out = []
    for truth in sim.truth:                # type: ignore[attr-defined]
        line = int(np.flatnonzero(w.line_number == w.numbers.index(truth.identifier))[0])
        out.append([(int(t) - truth.start_ms) / 60_000 for t in ev.t[fwd & (ev.line == line)]])
    return out


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_a_worlds_fraudsters_set_call_forwarding_around_the_swap_in_its_share(share: float,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # the world's draw in its range, after every other (a seed's earlier parameters unchanged)
    assert _LATER[-1] == "takeover_forwarding_share"
    values = [random_world(seed).takeover_forwarding_share for seed in range(6)]
    assert all(RANGES["takeover_forwarding_share"][0] <= v <= RANGES["takeover_forwarding_share"][1] for v in values)
    monkeypatch.setattr(generate, "world_params",
                        lambda kind, seed: dataclasses.replace(random_world(seed), takeover_forwarding_share=share))
    found = _victim_forwardings(_sim(11))
    assert len(found) == 2
    if share:
        assert all(len(minutes) == 1 and -15 <= minutes[0] <= 15 for minutes in found), found
        _victims_line_is_the_fraudsters(_sim(11))     # the forwarding too, where it comes after the swap
    else:
        assert found == [[], []]
