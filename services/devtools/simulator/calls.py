"""Live call signalling (``call_state`` events) of a simulated network, with the bank-spoof scenario.

    fraudradar simulate-calls --subscribers 2000 --duration 2h --seed 3 --out D

Writes ``D/call_events.jsonl`` (raw contract v1, type ``call_state``, event-time order),
``D/call_truth.jsonl`` (one line per call the check should or should not call risky, with the
moment the victim pays), ``D/protected_numbers.csv`` (the banks' caller numbers, ingest's
``FRAUDRADAR_PROTECTED_NUMBERS_FILE``), ``D/announcements.jsonl`` (the banks' pre-announced
outbound calls) and ``D/call_world.json`` (the drawn parameters).

Every parameter is drawn per seed from ``CALL_RANGES`` (another seed is another world). Calls:

* ``spoofed_bank_cli`` (fraud): from an international route, presenting one of a bank's real
  numbers, not announced; answered, and lasting while the victim pays (the payment falls inside
  the answered span).
  A share of them (``spoof_domestic_share``) come through a domestic carrier that does not check
  the CLI: the route rule cannot see those.
* ``bank_contact_centre`` (hard negative): the bank's own call, from its domestic route,
  presenting its number and pre-announced, as long as a spoof; a share
  (``bank_unannounced_abroad_share``) from a contact centre abroad and not announced, which the
  rule takes for a spoof.
* ``normal_long_call`` (hard negative): a long call with a contact the subscriber called before.
* ``forwarded_call`` (hard negative): a contact's call diverted to the subscriber, entering from
  an international route while presenting a Dutch number (the pattern a spoof shows, explained
  by the forwarding).
* ``short_call`` (background): ordinary short calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from tqdm import tqdm

from services.devtools.simulator.exceptions import SimulatorError
from services.devtools.simulator.timeline import DEFAULT_START, parse_duration, parse_start

CALL_RANGES: Final[dict[str, tuple[float, float]]] = {
    "banks": (2, 5),                          # banks with protected caller numbers
    "bank_numbers": (1, 3),                   # caller numbers per bank
    "spoofs_per_1k": (1.0, 6.0),              # spoofed-bank calls per 1000 subscribers per run
    "bank_calls_per_1k": (2.0, 10.0),         # announced contact-centre calls
    "long_calls_per_1k": (5.0, 25.0),         # long calls with a known contact
    "forwarded_per_1k": (1.0, 8.0),           # diverted calls from an international route
    "short_calls_per_sub": (0.5, 3.0),        # background calls per subscriber per run
    "spoof_minutes": (8.0, 45.0),             # how long a spoofer keeps the victim on the line
    "long_call_minutes": (10.0, 90.0),
    "ring_s": (2.0, 25.0),
    # the hard cases the rule does not see: a spoof through a domestic carrier that does not check
    # the CLI (a miss), and a bank's own call from a contact centre abroad it did not announce
    # (a false alarm)
    "spoof_domestic_share": (0.0, 0.3),
    "bank_unannounced_abroad_share": (0.0, 0.15),
}
FOREIGN_PREFIXES: Final = ("+4420", "+3222", "+4930", "+3491", "+4413", "+3314")


@dataclass
class CallWorld:
    seed: int
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class CallSim:
    events: list[dict[str, Any]]
    truth: list[dict[str, Any]]
    protected: list[tuple[str, str]]           # (number, owner)
    announcements: list[dict[str, Any]]
    world: CallWorld


def draw_world(seed: int) -> CallWorld:
    rng = np.random.default_rng([seed, 2020])
    params: dict[str, float] = {}
    for name, (low, high) in CALL_RANGES.items():
        if isinstance(low, int) and isinstance(high, int):
            params[name] = int(rng.integers(low, high + 1))
        else:
            params[name] = round(float(rng.uniform(low, high)), 4)
    return CallWorld(seed, params)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Builder:
    def __init__(self, operator: str) -> None:
        self.operator = operator
        self.events: list[dict[str, Any]] = []
        self.calls = 0

    def call(  # noqa: PLR0917 - the parts of one simulated call
            self, a: str, b: str, direction: str, start_ms: int, ring_s: float, talk_s: float, *,
            cli: str | None = None, international: bool = False, forwarded: bool = False) -> str:
        """The three steps of one call (two when unanswered); returns its call id."""
        self.calls += 1
        call_id = f"c{self.calls:07d}"
        common: dict[str, Any] = {"operator": self.operator, "type": "call_state", "a_number": a, "b_number": b,
                                  "direction": direction}
        extra: dict[str, Any] = {"international": international, "forwarded": forwarded}
        if cli is not None:
            extra["presented_cli"] = cli
        answered_ms = start_ms + int(ring_s * 1000)
        steps: list[tuple[str, int, dict[str, Any]]] = [("started", start_ms, {})]
        if talk_s > 0:
            steps.append(("answered", answered_ms, {}))
        end_ms = (answered_ms + int(talk_s * 1000)) if talk_s > 0 else answered_ms
        steps.append(("ended", end_ms, {"duration_s": round(talk_s, 1)}))
        for n, (state, at, more) in enumerate(steps):
            self.events.append({**common, "event_id": f"{call_id}-{n}", "occurred_at": _iso(at), "_ms": at,
                                "call_state": {"call_id": call_id, "state": state, **extra, **more}})
        return call_id


def simulate_calls(subscribers: int, duration_ms: int, seed: int, start_ms: int,
                   operator: str = "kpn") -> CallSim:
    if subscribers < 100:
        raise SimulatorError("--subscribers must be at least 100")
    world = draw_world(seed)
    p = world.params
    rng = np.random.default_rng([seed, 2021])
    subs = [f"+316{n:08d}" for n in rng.choice(10**8, size=subscribers, replace=False)]
    banks = [f"bank-{chr(ord('a') + i)}" for i in range(int(p["banks"]))]
    protected: list[tuple[str, str]] = []
    for bank in banks:
        for _ in range(int(p["bank_numbers"])):
            protected.append((f"+3120{int(rng.integers(10**6, 10**7)):07d}", bank))
    b = _Builder(operator)
    truth: list[dict[str, Any]] = []
    announcements: list[dict[str, Any]] = []
    span = max(1, duration_ms - 2 * 3600 * 1000) if duration_ms > 3 * 3600 * 1000 else max(1, duration_ms // 2)

    def count(rate_per_1k: float) -> int:
        return max(1, int(rng.poisson(rate_per_1k * subscribers / 1000)))

    def when() -> int:
        return start_ms + int(rng.integers(0, span))

    def ring() -> float:
        return float(rng.uniform(*CALL_RANGES["ring_s"]))

    def label(  # noqa: PLR0917 - the parts of one labelled call
            kind: str, call_id: str, sub: str, start: int, ring_s: float, talk_s: float, *, risky: bool) -> None:
        answered = start + int(ring_s * 1000)
        pay = answered + int(rng.uniform(0.2, 0.9) * talk_s * 1000)
        truth.append({"scenario": kind, "call_id": call_id, "subscriber": sub, "risky": risky,
                      "started_ms": start, "answered_ms": answered, "ended_ms": answered + int(talk_s * 1000),
                      "pay_ms": pay})

    for _ in range(count(p["spoofs_per_1k"])):
        victim = subs[int(rng.integers(subscribers))]
        bank_number, _owner = protected[int(rng.integers(len(protected)))]
        caller = f"{FOREIGN_PREFIXES[int(rng.integers(len(FOREIGN_PREFIXES)))]}{int(rng.integers(10**6, 10**7))}"
        t, r, talk = when(), ring(), float(rng.uniform(*CALL_RANGES["spoof_minutes"])) * 60
        domestic = bool(rng.random() < p["spoof_domestic_share"])
        if domestic:
            caller = f"+3185{int(rng.integers(10**6, 10**7)):07d}"   # a VoIP range of a careless carrier
        cid = b.call(caller, victim, "mt", t, r, talk, cli=bank_number, international=not domestic)
        label("spoofed_bank_cli", cid, victim, t, r, talk, risky=True)
    for _ in range(count(p["bank_calls_per_1k"])):
        customer = subs[int(rng.integers(subscribers))]
        bank_number, owner = protected[int(rng.integers(len(protected)))]
        t, r, talk = when(), ring(), float(rng.uniform(*CALL_RANGES["spoof_minutes"])) * 60
        abroad = bool(rng.random() < p["bank_unannounced_abroad_share"])
        if not abroad:
            announcements.append({"bank": owner, "calling_number": bank_number, "called_number": customer,
                                  "at_ms": t - int(rng.uniform(5, 60) * 1000), "ttl_s": 300})
        cid = b.call(bank_number, customer, "mt", t, r, talk, international=abroad)
        label("bank_contact_centre", cid, customer, t, r, talk, risky=False)
    for _ in range(count(p["long_calls_per_1k"])):
        i, j = rng.choice(subscribers, size=2, replace=False)
        t, talk = when(), float(rng.uniform(*CALL_RANGES["long_call_minutes"])) * 60
        b.call(subs[int(j)], subs[int(i)], "mt", t - 86_400_000 // 24, ring(), 60.0)  # they spoke before
        r = ring()
        cid = b.call(subs[int(j)], subs[int(i)], "mt", t, r, talk)
        label("normal_long_call", cid, subs[int(i)], t, r, talk, risky=False)
    for _ in range(count(p["forwarded_per_1k"])):
        i, j = rng.choice(subscribers, size=2, replace=False)
        t, r, talk = when(), ring(), float(rng.uniform(2, 30)) * 60
        cid = b.call(subs[int(j)], subs[int(i)], "mt", t, r, talk, international=True, forwarded=True)
        label("forwarded_call", cid, subs[int(i)], t, r, talk, risky=False)
    for _ in range(int(p["short_calls_per_sub"] * subscribers)):
        i, j = rng.choice(subscribers, size=2, replace=False)
        answered = rng.random() < 0.7
        b.call(subs[int(i)], subs[int(j)], "mo", when(), ring(), float(rng.exponential(90)) if answered else 0.0)
    b.events.sort(key=lambda e: (e["_ms"], e["event_id"]))
    for e in b.events:
        e.pop("_ms")
    return CallSim(b.events, truth, protected, announcements, world)


def write(sim: CallSim, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "call_events.jsonl").open("w") as fh:
        fh.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in sim.events)
    with (out / "call_truth.jsonl").open("w") as fh:
        fh.writelines(json.dumps(t, separators=(",", ":")) + "\n" for t in sim.truth)
    with (out / "announcements.jsonl").open("w") as fh:
        fh.writelines(json.dumps(a, separators=(",", ":")) + "\n" for a in sim.announcements)
    (out / "protected_numbers.csv").write_text("number,owner\n" + "".join(f"{n},{o}\n" for n, o in sim.protected))
    (out / "call_world.json").write_text(json.dumps(asdict(sim.world), indent=1) + "\n")


def _backtest(args: argparse.Namespace) -> int:
    from services.devtools.simulator.call_backtest import sweep

    seeds = list(range(args.seed, args.seed + args.seeds))
    result = sweep(seeds, args.subscribers, parse_duration(args.duration), parse_start(args.start))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "call_backtest.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["worst"]))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar simulate-calls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--duration", default="6h", help="run length: 90m, 6h, 24h (default 6h)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default=DEFAULT_START, help=f"RFC 3339 run start (default {DEFAULT_START})")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--backtest", action="store_true",
                        help="replay worlds through the call state instead; writes D/call_backtest.json")
    parser.add_argument("--seeds", type=int, default=8, help="--backtest: worlds (seeds SEED .. SEED+N-1)")
    args = parser.parse_args(argv)
    if args.backtest:
        return _backtest(args)
    try:
        with tqdm(total=2, desc="simulate-calls", disable=args.quiet, file=sys.stderr) as bar:
            sim = simulate_calls(args.subscribers, parse_duration(args.duration), args.seed, parse_start(args.start))
            bar.update()
            write(sim, args.out)
            bar.update()
    except SimulatorError as exc:
        print(f"fraudradar simulate-calls: {exc}", file=sys.stderr)
        return 2
    kinds: dict[str, int] = {}
    for t in sim.truth:
        kinds[t["scenario"]] = kinds.get(t["scenario"], 0) + 1
    print(f"{len(sim.events)} call_state events to {args.out / 'call_events.jsonl'}; labelled calls: "
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    return 0
