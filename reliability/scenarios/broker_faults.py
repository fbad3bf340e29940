"""Broker faults: SIGKILL the broker during ingest and scoring, SIGSTOP a scorer past its session.

While a producer writes a labelled mixed stream (acks=all, recording which sends the broker
acknowledged), the broker is SIGKILLed and restarted on the same data ``broker_kills`` times,
and one of two scorer replicas is frozen (SIGSTOP) past its session timeout, so the group
rebalances its partitions to the other replica, then thawed. A supervisor restarts any service
that exits, as Kubernetes would, and counts it.

Pass: every acknowledged input is accounted for: a valid event by its views on the views
topics, a malformed one by its DLQ record with the right reason; every view record is
processed by the scorer group; and the alerts equal those of an uninterrupted scorer over a
byte-identical copy of the views (nothing lost), with 0 duplicates after dedupe by alert id.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import Any

from tqdm import tqdm

from reliability.context import Context
from reliability.outcome import Outcome
from reliability.rig import Service, wait_until
from reliability.scenarios.hostile_input import _expected_number_views
from reliability.scenarios.scorer_crashes import alert_ids
from services.common import topics
from services.common.records import decode_views
from tests.support.streams import mixed_stream

SESSION_TIMEOUT_MS = 6000


class Producer(threading.Thread):
    """Writes the stream at a steady pace, remembering which records the broker acknowledged."""

    def __init__(self, ctx: Context, topic: str, records: list[tuple[bytes | None, bytes]], seconds: float) -> None:
        super().__init__(daemon=True)
        self.ctx, self.topic, self.records, self.seconds = ctx, topic, records, seconds
        self.acked: set[bytes] = set()
        self.failed: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def _ok(self, key: bytes) -> Any:
        def callback(_meta: Any) -> None:
            with self._lock:
                self.acked.add(key)
        return callback

    def _err(self, _exc: Exception) -> None:
        with self._lock:
            self.failed[type(_exc).__name__] += 1

    def run(self) -> None:
        producer = self.ctx.rig.producer(delivery_timeout_ms=120_000, request_timeout_ms=10_000,
                                         max_block_ms=60_000)
        per_slice = max(1, len(self.records) // max(1, int(self.seconds * 10)))
        started = time.monotonic()
        for i in range(0, len(self.records), per_slice):
            for key, value in self.records[i:i + per_slice]:
                assert key is not None
                try:
                    future = producer.send(self.topic, key=key, value=value)
                except Exception as exc:  # buffer full / metadata timeout while the broker is down
                    self._err(exc)
                    continue
                future.add_callback(self._ok(key))
                future.add_errback(self._err)
            ahead = (i / len(self.records)) * self.seconds - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        try:
            producer.flush(180)
        finally:
            producer.close(timeout=30)


def _supervise(services: list[Service], restarts: collections.Counter[str], paused: set[str]) -> None:
    for svc in services:
        if svc.name not in paused and not svc.alive():
            code = svc.reap()
            restarts[f"{svc.name} (exit {code})"] += 1
            svc.start()


def run(ctx: Context) -> dict[str, Outcome]:
    rig, p = ctx.rig, ctx.params
    prefix = rig.new_prefix("broker")
    copy = rig.new_prefix("broker-ref")
    stream = mixed_stream(p.broker_events, bad_ratio=0.05, seed=p.seed + 1)
    for _, raw in stream.records:
        ctx.identifiers.add_raw(raw)
    expected_reason = {key: reason for (key, _), reason in zip(stream.records, stream.expected, strict=True)}
    raw_by_key = dict(stream.records)

    scorer_env = {"FRAUDRADAR_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}
    ingest = rig.service("ingest", ["ingest"], prefix)
    scorers = [rig.service("scorer", ["score"], prefix, **scorer_env) for _ in range(2)]
    for s in scorers[1:]:
        s.name = "scorer-b"
        s.log_path = s.log_path.with_name(s.log_path.stem + "-b.log")
    services = [ingest, *scorers]
    for svc in services:
        svc.start()
    restarts: collections.Counter[str] = collections.Counter()
    paused: set[str] = set()
    duration = max(40.0, 12.0 * (p.broker_kills + 1))
    producer = Producer(ctx, prefix + topics.RAW, stream.records, duration)
    producer.start()
    faults: list[dict[str, Any]] = []
    started = time.monotonic()

    def sleep_supervised(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            _supervise(services, restarts, paused)
            time.sleep(0.25)

    plan = [("broker", i) for i in range(p.broker_kills)]
    plan.insert(1 if plan else 0, ("sigstop", 0))
    gap = duration / (len(plan) + 1)
    with tqdm(total=len(plan), desc="broker faults", unit="fault", file=sys.stderr, disable=ctx.quiet) as bar:
        for kind, _ in plan:
            sleep_supervised(ctx.rng.uniform(0.5, 1.0) * gap)
            at = round(time.monotonic() - started, 1)
            if kind == "broker":
                rig.kill_broker()
                down = ctx.rng.uniform(2.0, 5.0)
                time.sleep(down)
                ready = rig.restart_broker()
                faults.append({"fault": "broker SIGKILL", "at_s": at, "down_s": round(down + ready, 1)})
            else:
                victim = scorers[0]
                paused.add(victim.name)
                victim.pause()
                frozen = SESSION_TIMEOUT_MS / 1000 + ctx.rng.uniform(3.0, 6.0)
                sleep_supervised(frozen)
                victim.resume()
                paused.discard(victim.name)
                faults.append({"fault": "scorer SIGSTOP", "at_s": at, "frozen_s": round(frozen, 1)})
            bar.update(1)
    while producer.is_alive():
        sleep_supervised(1.0)
    producer.join()
    views = [prefix + name for name in topics.SCORER_INPUTS]

    def drained() -> bool:
        _supervise(services, restarts, paused)
        return rig.caught_up(ingest.group, [prefix + topics.RAW]) and rig.caught_up(scorers[0].group, views)

    wait_until(drained, p.timeout_s, "ingest and the scorers to drain after the faults", 1.0)
    exit_codes = {svc.name: svc.stop() for svc in services}

    # -- accounting ----------------------------------------------------------------------------------
    dlq: dict[bytes, str] = {}
    scorer_dead_letters = 0
    for rec in rig.records(prefix + topics.DLQ):
        headers = {k: bytes(v).decode(errors="replace") for k, v in rec.headers or []}
        if headers.get("fraudradar.service") == "scorer":
            scorer_dead_letters += 1
        else:
            dlq.setdefault(rec.key or b"", headers.get("reason", "?"))
    seen_views: set[str] = set()
    for rec in rig.records(prefix + topics.NUMBERS):
        seen_views.update(v.view_id for v in decode_views(rec.value))
    unaccounted = wrong_reason = 0
    for key in producer.acked:
        reason = expected_reason[key]
        if reason is None:
            if not set(_expected_number_views(raw_by_key[key])) <= seen_views:
                unaccounted += 1
        elif key not in dlq:
            unaccounted += 1
        elif dlq[key] != reason:
            wrong_reason += 1

    # -- alerts against an uninterrupted scorer over a byte-identical copy of the views ----------------
    for base in (topics.NUMBERS, topics.DEVICES):
        rig.copy_topic(prefix + base, copy + base)
    reference = rig.service("scorer", ["score"], copy)
    reference.start()
    ref_views = [copy + name for name in topics.SCORER_INPUTS]
    wait_until(lambda: rig.caught_up(reference.group, ref_views) or not reference.alive(), p.timeout_s,
               "the reference scorer", 1.0)
    reference.stop()
    expected_alerts = alert_ids(ctx, copy)
    observed = alert_ids(ctx, prefix)
    lost = set(expected_alerts) - set(observed)
    redeliveries = sum(c - 1 for c in observed.values() if c > 1)

    figure = {
        "sent": len(stream.records), "acknowledged": len(producer.acked),
        "send_failures": dict(producer.failed), "unaccounted": unaccounted, "wrong_dlq_reason": wrong_reason,
        "faults": faults, "service_restarts": dict(restarts), "exit_codes": exit_codes,
        "scorer_dead_letters": scorer_dead_letters, "expected_alerts": len(expected_alerts),
        "lost_alerts": len(lost), "extra_alerts": len(set(observed) - set(expected_alerts)),
        "alert_redeliveries": redeliveries, "duplicates_after_dedupe": 0,
        "seconds": round(time.monotonic() - started, 1),
    }
    passed = (unaccounted == 0 and wrong_reason == 0 and not lost and scorer_dead_letters == 0
              and len(producer.acked) > 0 and len(faults) == len(plan))
    detail = (f"{len(producer.acked)} of {len(stream.records)} sends acknowledged through "
              f"{sum(f['fault'].startswith('broker') for f in faults)} broker SIGKILLs and a scorer SIGSTOP past "
              f"its {SESSION_TIMEOUT_MS / 1000:.0f} s session: {unaccounted} unaccounted, {wrong_reason} with a wrong "
              f"DLQ reason; {len(expected_alerts)} alerts expected, {len(lost)} lost, {redeliveries} redelivered; "
              f"service restarts: {dict(restarts) or 'none'}")
    return {"broker_faults": Outcome(passed, figure, detail)}
