"""Hostile input: ≥10k malformed events mixed with valid traffic through the real ingest and scorer.

Pass: neither service crashes (each runs once, start to clean SIGTERM exit), every malformed
event is in the DLQ with the reason the contract gives it, every valid event's views are on the
views topics and scored (the scorer's group committed past every view record and its
``fraudradar_scorer_views_total`` equals the views written), events far in the future are
counted in ``fraudradar_ingest_future_events_total`` and far in the past in
``fraudradar_ingest_late_events_total``.
"""

from __future__ import annotations

import collections
import time

import orjson

from reliability.context import Context
from reliability.hostile import Case, Corpus
from reliability.outcome import Outcome
from reliability.rig import wait_until
from services.common import topics
from services.common.records import decode_views
from services.ingest.transform import view_id
from tests.support.streams import mixed_stream


def _expected_number_views(raw: bytes) -> list[str]:
    ev = orjson.loads(raw)
    roles = ["change"] if ev["type"] == "sim" else ["out", "in"]
    return [view_id(ev["operator"], ev["event_id"], "number", role) for role in roles]


def run(ctx: Context) -> dict[str, Outcome]:
    rig, p = ctx.rig, ctx.params
    prefix = rig.new_prefix("hostile")
    corpus = Corpus(p.seed)
    hostile = corpus.hostile(p.hostile)
    edge = corpus.edge_valid(max(60, p.hostile // 20))
    good = mixed_stream(p.valid, bad_ratio=0.0, seed=p.seed)
    cases: list[tuple[bytes, Case]] = [(f"bad-{i}".encode(), c) for i, c in enumerate(hostile)]
    cases += [(f"edge-{i}".encode(), c) for i, c in enumerate(edge)]
    cases += [(key or b"", Case(raw, None, "valid")) for key, raw in good.records]
    ctx.rng.shuffle(cases)
    for _, case in cases:
        ctx.identifiers.add_raw(case.raw)

    ingest = rig.service("ingest", ["ingest"], prefix)
    ingest.start()
    scorer = rig.service("scorer", ["score"], prefix)
    scorer.start()
    started = time.monotonic()
    rig.produce(prefix + topics.RAW, ((key, case.raw) for key, case in cases))
    raw_topic = prefix + topics.RAW
    views_topics = [prefix + name for name in topics.SCORER_INPUTS]
    wait_until(lambda: rig.caught_up(ingest.group, [raw_topic]) or not ingest.alive(), p.timeout_s,
               "ingest to consume the hostile mix")
    wait_until(lambda: rig.caught_up(scorer.group, views_topics) or not scorer.alive(), p.timeout_s,
               "scorer to consume the views of the hostile mix")
    elapsed = time.monotonic() - started

    crashes = 0
    for svc in (ingest, scorer):
        if not svc.alive():
            crashes += 1
    future_counted = ingest.metric("fraudradar_ingest_future_events_total")
    late_counted = ingest.metric("fraudradar_ingest_late_events_total")
    scored = scorer.metric("fraudradar_scorer_views_total")
    exit_codes = {svc.name: svc.stop() for svc in (ingest, scorer)}
    crashes += sum(1 for code in exit_codes.values() if code not in (0, None))

    # -- DLQ: every malformed event, with its reason, nothing else ------------------------------------
    expected_reason = {key: case.reason for key, case in cases}
    dlq_by_key: dict[bytes, list[str]] = collections.defaultdict(list)
    scorer_dead_letters = 0
    for rec in rig.records(prefix + topics.DLQ):
        headers = {k: bytes(v).decode(errors="replace") for k, v in rec.headers or []}
        if headers.get("fraudradar.service") == "scorer":
            scorer_dead_letters += 1
            continue
        dlq_by_key[rec.key or b""].append(headers.get("reason", "?"))
    bad_keys = [key for key, case in cases if case.reason is not None]
    right = sum(1 for key in bad_keys if dlq_by_key.get(key) and dlq_by_key[key][0] == expected_reason[key])
    wrong = collections.Counter(
        f"{expected_reason[k]}->{dlq_by_key[k][0] if dlq_by_key.get(k) else 'missing'}"
        for k in bad_keys if not (dlq_by_key.get(k) and dlq_by_key[k][0] == expected_reason[k]))
    valid_in_dlq = sum(1 for key, case in cases if case.reason is None and key in dlq_by_key)

    # -- views: every valid event's number views present; every view scored ----------------------------
    expected_views: set[str] = set()
    for _, case in cases:
        if case.reason is None:
            expected_views.update(_expected_number_views(case.raw))
    seen_views: set[str] = set()
    n_views = 0
    late_views = 0
    for rec in rig.records(prefix + topics.NUMBERS):
        for view in decode_views(rec.value):
            seen_views.add(view.view_id)
            n_views += 1
            late_views += view.late
    n_device_views = sum(len(decode_views(rec.value)) for rec in rig.records(prefix + topics.DEVICES))
    missing_views = len(expected_views - seen_views)
    n_valid = sum(1 for _, c in cases if c.reason is None)
    n_future = sum(1 for _, c in cases if c.reason == "FUTURE_EVENT")
    n_past = sum(1 for _, c in cases if c.family in ("far_past", "late"))
    total_views = n_views + n_device_views

    families = collections.Counter(c.family for _, c in cases if c.reason is not None)
    figure = {
        "malformed": len(bad_keys), "malformed_in_dlq_with_right_reason": right,
        "valid": n_valid, "valid_in_dlq": valid_in_dlq, "valid_number_views_missing": missing_views,
        "views_written": total_views, "views_scored": int(scored),
        "scorer_dead_letters": scorer_dead_letters,
        "crashes": crashes, "future_events": n_future, "future_counted": int(future_counted),
        "past_events": n_past, "late_counted": int(late_counted), "late_views": late_views,
        "families": dict(sorted(families.items())), "seconds": round(elapsed, 1),
    }
    ingest_ok = (crashes == 0 and right == len(bad_keys) and valid_in_dlq == 0 and missing_views == 0
                 and future_counted == n_future and late_counted == n_past)
    scored_ok = int(scored) == total_views and scorer_dead_letters == 0
    problems = []
    if wrong:
        problems.append(f"wrong/missing DLQ reasons: {dict(wrong.most_common(8))}")
    if missing_views:
        problems.append(f"{missing_views} views of valid events missing")
    if crashes:
        problems.append(f"crashes: {crashes} (exit codes {exit_codes})")
    if not scored_ok:
        problems.append(f"scored {int(scored)} of {total_views} views; scorer dead letters {scorer_dead_letters}")
    detail = (f"{len(bad_keys)} malformed ({len(families)} families) mixed into {n_valid} valid events; "
              f"{right} dead-lettered with the right reason, {n_future} future and {n_past} past events counted; "
              + ("; ".join(problems) if problems else "0 crashes, every valid view scored"))
    return {"hostile_input": Outcome(ingest_ok and scored_ok, figure, detail)}
