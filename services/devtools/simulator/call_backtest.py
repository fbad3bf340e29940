"""Backtest of the call-state check: the simulated call signalling replayed through ingest's call
transform and the API's call state, a check at every labelled call's payment moment.

    fraudradar simulate-calls --backtest --seeds 8 --subscribers 5000 --out D

Per world (seed): for each labelled call, the check the victim's bank would make when the
victim pays (``pay_ms``, inside the answered call) with the default 15-minute window; "flagged"
is a risk level of high or above. Reported like the traffic backtest: recall and precision of the
spoof scenario, each hard-negative class's flagged share, and ``victims_before_alert`` (spoofed
victims whose payment check was not flagged: they paid without a warning). Across worlds the
worst world per metric is reported. The replay runs the production code paths
(``IngestPipeline`` with ``CallTransformer``, ``CallStateStore``, ``verdict``); no counterpart
risk from the scorer enters it (the flagged-counterpart reason is not exercised here).
"""

from __future__ import annotations

import heapq
import json
from typing import Any

from services.api.call_state import CallStateStore, verdict
from services.common.protected_numbers import ProtectedNumbers
from services.common.pseudonym import Key, Pseudonymizer
from services.devtools.simulator.calls import CallSim, simulate_calls
from services.ingest.call_transform import CallTransformer
from services.ingest.pipeline import IngestLimits, IngestPipeline
from services.ingest.transform import Transformer

FLAGGED = frozenset({"high", "critical"})
WINDOW_MIN = 15


def backtest(sim: CallSim) -> dict[str, Any]:
    pseudo = Pseudonymizer(Key("backtest", b"\x01" * 32))
    protected = ProtectedNumbers.parse("number,owner\n" + "".join(f"{n},{o}\n" for n, o in sim.protected))
    pipeline = IngestPipeline(Transformer(pseudo, None), IngestLimits(dedupe_window=10_000_000),
                              CallTransformer(pseudo, protected))
    store = CallStateStore(retain_ms=60 * 60_000, max_call_ms=4 * 3600_000, contacts_ms=24 * 3600_000,
                           max_subscribers=10_000_000)
    # one time-ordered stream of steps (0), announcements (1) and payment checks (2)
    steps = ((pipeline.process(json.dumps(e).encode(), now_ms=None), 0, n) for n, e in enumerate(sim.events))
    items: list[tuple[int, int, int, Any]] = []
    for result, kind, n in steps:
        assert result.call is not None, result.reason
        items.append((result.call.occurred_ms, kind, n, result.call))
    for n, a in enumerate(sim.announcements):
        items.append((a["at_ms"], 1, n, a))
    for n, t in enumerate(sim.truth):
        items.append((t["pay_ms"], 2, n, t))
    heapq.heapify(items)
    outcome: dict[str, list[bool]] = {}
    victims_before_alert = 0
    while items:
        at, kind, _, item = heapq.heappop(items)
        if kind == 0:
            store.apply(item)
        elif kind == 1:
            expires = at + int(item["ttl_s"]) * 1000
            store.announcements.add(item["bank"], pseudo("msisdn", item["called_number"]),
                                    pseudo("msisdn", item["calling_number"]), expires)
        else:
            calls = store.recent(pseudo("msisdn", item["subscriber"]), at, WINDOW_MIN * 60_000)
            flagged = any(verdict(c, lambda _p: "none")[0] in FLAGGED for c in calls)
            outcome.setdefault(item["scenario"], []).append(flagged)
            if item["risky"] and not flagged:
                victims_before_alert += 1
    spoof = outcome.get("spoofed_bank_cli", [])
    true_pos = sum(spoof)
    false_pos = sum(sum(v) for k, v in outcome.items() if k != "spoofed_bank_cli")
    return {
        "spoofs": len(spoof),
        "recall": true_pos / len(spoof) if spoof else None,
        "precision": true_pos / (true_pos + false_pos) if true_pos + false_pos else None,
        "victims_before_alert": victims_before_alert,
        "negatives_flagged": {k: {"calls": len(v), "flagged": sum(v)} for k, v in sorted(outcome.items())
                              if k != "spoofed_bank_cli"},
        "world": sim.world.params,
    }


def sweep(seeds: list[int], subscribers: int, duration_ms: int, start_ms: int) -> dict[str, Any]:
    worlds = {seed: backtest(simulate_calls(subscribers, duration_ms, seed, start_ms)) for seed in seeds}

    def worst(metric: str, low_is_bad: bool = True) -> dict[str, Any]:
        values = {s: w[metric] for s, w in worlds.items() if w[metric] is not None}
        seed = (min if low_is_bad else max)(values, key=values.__getitem__)
        return {"seed": seed, metric: values[seed]}

    return {"worlds": worlds, "worst": {"recall": worst("recall"), "precision": worst("precision"),
                                        "victims_before_alert": worst("victims_before_alert", low_is_bad=False)}}
