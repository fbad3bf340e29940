"""Scorer crashes: kill -9 the scorer at random moments of a ≥1M-event replay; nothing is lost.

1. Simulate ``events`` raw events (the simulator, all fraud scenarios), run them through the
   real ingest once.
2. Reference: one scorer, never interrupted, scores prefix A → the expected alert ids.
3. Crash run: the two views topics are copied record by record into prefix B (the very same
   records in the same order per partition; ingest's transaction markers are not copied) as a
   paced stream, while a scorer scores prefix B and is
   SIGKILLed at ``kills`` random moments (random progress points, plus a random delay of up to
   one commit interval so kills land between commits), restarted each time.
4. Both runs include the links the scorer writes for itself (``fraudradar.links``).
5. Compare: lost alerts = expected ids not observed (must be 0); duplicates after the consumer's
   dedupe (must be 0); redeliveries (the same alert written more than once) are reported.
6. Freeze run (check ``scorer_freezes``): the same views, paced, into prefix C, scored by two
   replicas of one group; at ``freezes`` random moments one of them is frozen (SIGSTOP: a paused
   pod, a VM migration) for longer than its session, so the other takes its partitions and
   restores them, then resumed: it reaches its commit believing it still owns them. Passes when
   no alert is lost, none is duplicated after dedupe, and on every ``scorer-state`` partition
   the commits' group generations (header of each commit marker) never go down — no replica
   wrote state after its successor. Fenced commits of the resumed replicas are reported.
   Every other freeze (the first, third, ...) is placed inside the commit path: the replica
   (run through ``reliability.commit_freeze``) stops itself right before it commits, its
   outputs, changelog and offsets sent in the open transaction; the others land at random
   points. The broker must abort and fence those transactions (``fraudradar_transactions_total``).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import sys
import time
from typing import Any

from tqdm import tqdm

from reliability.commit_freeze import TRIGGER_ENV
from reliability.context import Context
from reliability.outcome import Outcome
from reliability.rig import Service, wait_until
from services.common import topics
from services.common.records import decode_alert
from services.scorer.state import COMMIT_KEY

COMMIT_INTERVAL_S = 0.5
# a killed scorer's open transaction hides what its successor committed after it until the broker
# aborts it (the transaction timeout, 20 s by default): final counts wait for that, bounded
STABLE_S = 120.0
SESSION_S = 10.0
FREEZE_S = 14.0        # > the session: the other replica takes over while this one is frozen
TXN_TIMEOUT_S = 10.0   # < the freeze: a transaction frozen open is aborted by the broker


def simulated_events(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    """The first ``n`` events (event-time order) of a simulated run sized to hold them."""
    from services.devtools.simulator.generate import SimConfig, render, simulate
    from services.devtools.simulator.timeline import DEFAULT_START, parse_start

    # the simulator makes ~0.48 events per subscriber-hour (docs/reliability.md, the full-scale
    # run); size for 20 % more than asked, and re-run longer if that fell short
    subscribers = max(1000, n // 20)
    hours = max(2, math.ceil(1.2 * n / (0.48 * subscribers)))
    while True:
        sim = simulate(SimConfig(subscribers=subscribers, duration_ms=hours * 3_600_000, seed=seed,
                                 start_ms=parse_start(DEFAULT_START)))
        out: list[tuple[bytes, bytes]] = []
        for chunk in render(sim):
            for key, line in chunk:
                out.append((key.encode(), line))
                if len(out) >= n:
                    return out
        hours = math.ceil(hours * 1.2 * n / max(1, len(out)))


def alert_ids(ctx: Context, prefix: str) -> collections.Counter[str]:
    ids: collections.Counter[str] = collections.Counter()
    for rec in ctx.rig.records(prefix + topics.ALERTS, stable_s=STABLE_S):
        if rec.value is not None:
            ids[decode_alert(rec.value).alert_id] += 1
    return ids


def consumer_dedupe(ctx: Context, prefix: str) -> tuple[int, str]:
    """Duplicates left after the alert consumer's dedupe (the API's alert store when present)."""
    from services.api.store import dedupe_alert_ids

    seen: collections.Counter[str] = collections.Counter()
    ordered = [decode_alert(r.value).alert_id for r in ctx.rig.records(prefix + topics.ALERTS, stable_s=STABLE_S)
               if r.value]
    for alert_id in dedupe_alert_ids(ordered):
        seen[alert_id] += 1
    return sum(c - 1 for c in seen.values() if c > 1), "the API's alert materialiser (dedupe_alert_ids)"


@dataclasses.dataclass
class AlertComparison:
    """A disturbed run's alerts against the uninterrupted run's."""

    expected: int
    observed: collections.Counter[str]
    lost: set[str]
    extra: set[str]
    duplicates_after_dedupe: int
    dedupe_how: str

    @property
    def holds(self) -> bool:
        """Nothing lost, no duplicate after dedupe, and a reference that raised alerts at all."""
        return not self.lost and self.duplicates_after_dedupe == 0 and self.expected > 0

    def figure(self) -> dict[str, int]:
        return {"expected_alerts": self.expected, "observed_alerts": len(self.observed),
                "lost_alerts": len(self.lost), "extra_alerts": len(self.extra),
                "duplicates_after_dedupe": self.duplicates_after_dedupe}

    def summary(self) -> str:
        return (f"{len(self.lost)} of {self.expected} alerts lost, {len(self.extra)} extra, "
                f"{self.duplicates_after_dedupe} duplicates after {self.dedupe_how}")


def compare_alerts(ctx: Context, prefix: str, expected: collections.Counter[str]) -> AlertComparison:
    """``prefix``'s alerts against ``expected`` (alert id → count) of the uninterrupted run."""
    observed = alert_ids(ctx, prefix)
    duplicates, how = consumer_dedupe(ctx, prefix)
    return AlertComparison(len(expected), observed, set(expected) - set(observed), set(observed) - set(expected),
                           duplicates, how)


def _at(faults: list[dict[str, Any]]) -> str:
    """Where the faults landed, as shares of the views ("13%, 16%, ...")."""
    return ", ".join(f"{f['at_fraction']:.0%}" for f in faults)


def _shortfall(noun: str, landed: int, requested: int) -> str:
    return f"; only {landed} of {requested} {noun} landed before the run finished" if landed < requested else ""


def _score_to_end(ctx: Context, svc: Service, views: list[str], what: str) -> float:
    started = time.monotonic()
    svc.start()
    wait_until(lambda: ctx.rig.caught_up(svc.group, views) or not svc.alive(), ctx.params.timeout_s, what, 1.0)
    elapsed = time.monotonic() - started
    if not svc.alive():
        raise RuntimeError(f"{svc.name} exited with {svc.reap()} during {what}")
    svc.stop()
    return elapsed


def generation_regressions(ctx: Context, prefix: str) -> tuple[int, int]:
    """(commit markers, markers whose writer generation is below an earlier one on their partition)."""
    highest: dict[int, int] = {}
    markers = regressions = 0
    for rec in ctx.rig.records(prefix + topics.SCORER_STATE, stable_s=STABLE_S):
        if rec.key != COMMIT_KEY:
            continue
        markers += 1
        generation = int(dict(rec.headers or []).get("fraudradar.generation", b"-1"))
        if generation < highest.get(rec.partition, -1) or generation < 0:
            regressions += 1
        highest[rec.partition] = max(generation, highest.get(rec.partition, -1))
    return markers, regressions


def _freeze_run(ctx: Context, source: str, expected: collections.Counter[str], ref_seconds: float) -> Outcome:
    rig, p = ctx.rig, ctx.params
    c = rig.new_prefix("freeze-run")
    group = f"{c}scorer"
    triggers = [rig.workdir / f"freeze-trigger-{c.rstrip('.')}-{i}" for i in range(2)]
    # run through reliability.commit_freeze: a replica stops itself inside its commit path when
    # its trigger file exists (between produce and commit), else it is the plain scorer
    replicas = [rig.service(f"scorer{i}", ["score"], c, group=group, module="reliability.commit_freeze",
                            FRAUDRADAR_SESSION_TIMEOUT_MS=str(int(SESSION_S * 1000)),
                            FRAUDRADAR_COMMIT_INTERVAL_S=str(COMMIT_INTERVAL_S),
                            # below the freeze: the broker aborts a transaction frozen open and
                            # fences its producer (the default, 20 s, would outlast the freeze)
                            FRAUDRADAR_TRANSACTION_TIMEOUT_MS=str(int(TXN_TIMEOUT_S * 1000)),
                            **{TRIGGER_ENV: str(triggers[i])}) for i in range(2)]
    for replica in replicas:
        replica.start()
    started = time.monotonic()
    # a stream over the reference run's time and ~30 s per freeze (frozen 14 s, then a rejoin)
    total, copier = rig.copy_topics_paced([(source + base, c + base) for base in (topics.NUMBERS, topics.DEVICES)],
                                          max(1.2 * ref_seconds, 30.0 * p.freezes))
    views_only = [c + topics.NUMBERS, c + topics.DEVICES]
    own_exits = 0

    def supervise() -> None:
        nonlocal own_exits
        for replica in replicas:
            if not replica.alive():
                own_exits += 1
                replica.reap()
                replica.start()

    freezes: list[dict[str, Any]] = []
    with tqdm(total=p.freezes, desc="scorer freeze", unit="freeze", file=sys.stderr, disable=ctx.quiet) as bar:
        for target in sorted(ctx.rng.uniform(0.05, 0.8) for _ in range(p.freezes)):
            deadline = time.monotonic() + p.timeout_s
            while time.monotonic() < deadline:
                supervise()
                done, _ = rig.progress(group, views_only)
                if done / total >= target:
                    break
                time.sleep(0.5)
            if done >= total:
                break
            index = ctx.rng.randrange(len(replicas))
            victim = replicas[index]
            if not victim.alive():
                supervise()                    # exited on its own: restarted, frozen next time
                continue
            where = "random"
            if len(freezes) % 2 == 0:
                # inside the commit path: the replica stops itself at its next commit, its
                # outputs, changelog and offsets sent and not committed; one that owns nothing
                # never commits, and is then frozen where it stands
                triggers[index].touch()
                deadline_commit = time.monotonic() + 10 * COMMIT_INTERVAL_S + 5.0
                while not victim.stopped() and victim.alive() and time.monotonic() < deadline_commit:
                    time.sleep(0.05)
                if victim.stopped():
                    where = "commit"
                else:
                    triggers[index].unlink(missing_ok=True)
            if not victim.alive():             # exited on its own while the trigger waited
                triggers[index].unlink(missing_ok=True)
                supervise()
                continue
            if where == "random":
                victim.pause()
            time.sleep(FREEZE_S)
            triggers[index].unlink(missing_ok=True)
            victim.resume()
            freezes.append({"at_fraction": round(done / total, 3), "replica": victim.name, "where": where})
            bar.update(1)
            time.sleep(2 * SESSION_S / 3)      # it reaches its commit, rejoins, the two split again
    copier.join()
    inputs = [c + name for name in topics.SCORER_INPUTS]

    def finished() -> bool:
        supervise()
        return rig.caught_up(group, inputs)

    wait_until(finished, p.timeout_s, "the freeze run to finish", 1.0)
    fenced = sum(r.metric("fraudradar_consumer_commits_fenced_total", service="scorer") for r in replicas)
    txn = {outcome: int(sum(r.metric("fraudradar_transactions_total", service="scorer", outcome=outcome)
                            for r in replicas)) for outcome in ("committed", "aborted", "fenced")}
    for replica in replicas:
        replica.stop()
    alerts = compare_alerts(ctx, c, expected)
    markers, regressions = generation_regressions(ctx, c)
    figure = {
        "freezes": len(freezes), "freezes_requested": p.freezes, "freeze_s": FREEZE_S, "session_s": SESSION_S,
        **alerts.figure(),
        "commits_fenced": int(fenced), "commit_markers": markers, "generation_regressions": regressions,
        "transactions": txn, "freezes_in_commit": sum(f["where"] == "commit" for f in freezes),
        "scorer_exits_on_its_own": own_exits, "seconds": round(time.monotonic() - started, 1),
        "freeze_points": [f["at_fraction"] for f in freezes],
    }
    passed = alerts.holds and regressions == 0 and markers > 0 and len(freezes) >= p.freezes
    in_commit = sum(f["where"] == "commit" for f in freezes)
    detail = (f"two replicas, {len(freezes)} freezes of {FREEZE_S:.0f} s (session {SESSION_S:.0f} s; "
              f"{in_commit} inside the commit path, between produce and commit) at "
              f"{_at(freezes)} of the views: {alerts.summary()}; {markers} state commits, "
              f"{regressions} written by a replica after its successor; {int(fenced)} commits fenced by the "
              f"membership check; transactions {txn['committed']} committed, {txn['aborted']} aborted, "
              f"{txn['fenced']} fenced by the broker"
              + _shortfall("freezes", len(freezes), p.freezes))
    return Outcome(passed, figure, detail)


def run(ctx: Context) -> dict[str, Outcome]:
    rig, p = ctx.rig, ctx.params
    a = rig.new_prefix("crash-ref")
    b = rig.new_prefix("crash-run")
    t0 = time.monotonic()
    events = simulated_events(p.events, p.seed)
    for _, raw in events[:: max(1, len(events) // 50_000)]:
        ctx.identifiers.add_raw(raw)   # a sample for the privacy scan (the full set is scanned there)
    ctx.notes["crash_prefixes"] = [a, b]
    rig.produce(a + topics.RAW, events)
    n_events = len(events)
    del events
    ingest = rig.service("ingest", ["ingest"], a)
    ingest.start()
    wait_until(lambda: rig.caught_up(ingest.group, [a + topics.RAW]) or not ingest.alive(), p.timeout_s,
               "ingest of the simulated run", 2.0)
    ingest.stop()
    prepared = time.monotonic() - t0

    # the scorer's inputs: the views, and the links its own device verdicts write for numbers
    views_a = [a + name for name in topics.SCORER_INPUTS]
    views_b = [b + name for name in topics.SCORER_INPUTS]
    reference = rig.service("scorer", ["score"], a)
    ref_seconds = _score_to_end(ctx, reference, views_a, "the uninterrupted scorer run")
    expected = alert_ids(ctx, a)

    # dynamic membership with a 10 s session: a restarted replica waits out the dead member's
    # session. (Static membership, FRAUDRADAR_INSTANCE_ID, was tried: a replica that joined
    # before it had the topics' metadata kept an empty assignment forever; see the report.)
    # progress is read from committed offsets, so the crash run commits every 0.5 s (the default
    # is 2 s): coarser, a small run is done in one or two commits and no kill can land; near the
    # end one commit can still cover the rest, so the last kill point stays below 85 %
    crashy = rig.service("scorer", ["score"], b, FRAUDRADAR_SESSION_TIMEOUT_MS="10000",
                         FRAUDRADAR_COMMIT_INTERVAL_S=str(COMMIT_INTERVAL_S))
    fractions = sorted(ctx.rng.uniform(0.02, 0.85) for _ in range(p.kills))
    kills: list[dict[str, Any]] = []
    own_exits = 0
    started = time.monotonic()
    crashy.start()
    # the same views as the reference read, arriving as a stream over at least the reference
    # run's time and ~15 s per kill (a restart waits out the killed member's 10 s session):
    # from a backlog, a small run is consumed in one or two polls and no kill lands mid-run
    pace_s = max(1.2 * ref_seconds, 15.0 * p.kills)
    total, copier = rig.copy_topics_paced([(a + base, b + base) for base in (topics.NUMBERS, topics.DEVICES)],
                                          pace_s)
    views_only = [b + topics.NUMBERS, b + topics.DEVICES]
    with tqdm(total=p.kills, desc="scorer kill -9", unit="kill", file=sys.stderr, disable=ctx.quiet) as bar:
        for target in fractions:
            def reached(target: float = target) -> bool:
                done, _ = rig.progress(crashy.group, views_only)
                return done / total >= target

            deadline = time.monotonic() + p.timeout_s
            while not reached() and time.monotonic() < deadline:
                if not crashy.alive():
                    own_exits += 1
                    crashy.reap()
                    crashy.start()
                time.sleep(0.5)
            time.sleep(ctx.rng.uniform(0.0, COMMIT_INTERVAL_S))  # land anywhere between two commits
            done, _ = rig.progress(crashy.group, views_only)
            if done >= total:
                break
            crashy.kill9()
            kills.append({"at_fraction": round(done / total, 3), "t_s": round(time.monotonic() - started, 1)})
            bar.update(1)
            crashy.start()
    copier.join()

    def finished() -> bool:
        nonlocal own_exits
        if not crashy.alive():        # exited by itself (e.g. a stalled rejoin, exit 3): restart it
            own_exits += 1
            crashy.reap()
            crashy.start()
        return rig.caught_up(crashy.group, views_b)

    wait_until(finished, p.timeout_s, "the crash run to finish", 1.0)
    crash_seconds = time.monotonic() - started
    crashy.stop()

    alerts = compare_alerts(ctx, b, expected)
    redeliveries = sum(c - 1 for c in alerts.observed.values() if c > 1)
    figure = {
        "events": n_events, "kills": len(kills), "kills_requested": p.kills,
        **alerts.figure(), "redeliveries": redeliveries,
        "scorer_exits_on_its_own": own_exits,
        "seconds": {"prepare": round(prepared, 1), "reference_run": round(ref_seconds, 1),
                    "crash_run": round(crash_seconds, 1)},
        "kill_points": [k["at_fraction"] for k in kills],
    }
    passed = alerts.holds and len(kills) >= p.kills and n_events >= p.events
    detail = (f"{n_events} events, {len(kills)} kill -9 (at {_at(kills)} of the views), against the uninterrupted "
              f"run: {alerts.summary()}, {redeliveries} redelivered records" + _shortfall("kills", len(kills), p.kills))
    if not expected:
        detail += "; the reference run raised no alert, so the comparison proves nothing"
    if n_events < p.events:
        detail += f"; only {n_events} of the {p.events} events asked for were simulated"
    outcomes = {"scorer_crashes": Outcome(passed, figure, detail)}
    outcomes["scorer_freezes"] = (_freeze_run(ctx, a, expected, ref_seconds) if p.freezes > 0
                                  else Outcome.not_run("--freezes 0"))
    return outcomes
