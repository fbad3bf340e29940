"""Privacy: no plaintext identifier beyond ingest; lookups audited; expired data really gone.

``privacy_plaintext`` runs last: it reads the raw topic of every prefix the run used (the full
set of identifiers that went in), then scans keys, values and headers of every topic of
``services.common.topics.default_specs`` except the raw input and the DLQ (views, links, risk,
alerts, scorer state, feedback, audit, calls, partner state), every service log and the last
``/metrics`` text of every service, for any form of those numbers, IMEIs and IMSIs. A control
scan of the raw topic must find them (the scan works).

``privacy_retention`` runs its own small stream: numbers active only 20 days ago (past the
scorer's 14-day TTL, some with a SIM swap so they have risk records) and fresh traffic that
moves event time on. Their latest record in ``scorer-state`` and ``risk`` must be a tombstone,
a restored engine must not know them, and after the broker's log cleaner ran (topic configs
tightened for this prefix only) no value for them may remain in either compacted topic.

``privacy_audit`` needs the API: N lookups leave N audit records.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import orjson

from reliability.context import Context
from reliability.outcome import Outcome
from reliability.rig import wait_until
from reliability.scan import Identifiers, Scanner, record_blobs
from services.common import topics
from services.common.records import decode_views

_SAMPLE_VALUE = re.compile(r"^([^#\s][^\s{]*(?:\{.*\})?)\s+\S+(?:\s+\S+)?$", re.MULTILINE)
# raw input and its DLQ sit inside the telco's boundary and hold plaintext by design; every other
# topic of the installation is scanned, derived from the topic list so a new topic is covered
NOT_SCANNED = (topics.RAW, topics.DLQ)
SCANNED = tuple(spec.suffix for spec in topics.default_specs() if spec.suffix not in NOT_SCANNED)


def plaintext(ctx: Context) -> Outcome:
    rig = ctx.rig
    ids = Identifiers()
    ids.numbers |= ctx.identifiers.numbers
    ids.imeis |= ctx.identifiers.imeis
    ids.imsis |= ctx.identifiers.imsis
    raw_records = 0
    for prefix in rig.prefixes:
        for rec in rig.records(prefix + topics.RAW):
            ids.add_raw(rec.value)
            raw_records += 1
    scanner = Scanner(ids.forms())
    for prefix in rig.prefixes:
        for base in SCANNED:
            scanner.feed(base, record_blobs(rig.records(prefix + base)))
    for path in sorted((rig.workdir / "logs").glob("*.log")):
        scanner.feed("logs", [path.read_bytes()])
    # metric names, label names and label values: sample values are measurements (bytes,
    # seconds, counts) whose digits can coincide with a 9-digit national form by chance
    texts = [svc.last_metrics for svc in rig.services] + [str(ctx.notes.get("api_metrics", ""))]
    scanner.feed("metrics", [_SAMPLE_VALUE.sub(r"\1", text).encode() for text in texts])
    control = Scanner(scanner.forms)
    first = rig.prefixes[0] if rig.prefixes else None
    if first:
        sample = []
        for rec in rig.records(first + topics.RAW):
            sample.append(rec.value)
            if len(sample) >= 200:
                break
        control.feed("raw", sample)
    figure = {
        "identifiers": {"numbers": len(ids.numbers), "imeis": len(ids.imeis), "imsis": len(ids.imsis)},
        "raw_records_read": raw_records, "hits": scanner.hits,
        "bytes_scanned": scanner.scanned, "control_hits_in_raw_sample": control.total_hits,
        "services_scraped": sum(1 for s in rig.services if s.last_metrics),
        "log_files": len(list((rig.workdir / "logs").glob("*.log"))),
    }
    passed = scanner.total_hits == 0 and control.total_hits > 0 and len(ids) > 0
    detail = (f"{len(ids)} identifiers from {raw_records} raw records, {sum(scanner.scanned.values()) / 1e6:.1f} MB "
              f"scanned over {len(rig.prefixes)} prefixes (topics except raw and DLQ, "
              f"{figure['log_files']} service logs, {figure['services_scraped']} /metrics): "
              f"{scanner.total_hits} plaintext hits" + (f" ({'; '.join(scanner.examples)})" if scanner.examples else "")
              + f"; the control scan of the raw topic finds {control.total_hits}")
    return Outcome(passed, figure, detail)


def _event(event_id: str, when: datetime, a: str, b: str, kind: str = "sms") -> bytes:
    if kind == "sim":
        return orjson.dumps({"event_id": event_id, "operator": "kpn", "type": "sim", "occurred_at": when.isoformat(),
                             "sim": {"change": "swap", "msisdn": a, "imsi": "204081234567890"}})
    return orjson.dumps({"event_id": event_id, "operator": "kpn", "type": "sms", "occurred_at": when.isoformat(),
                         "a_number": a, "b_number": b, "sms": {"segments": 1}})


def retention(ctx: Context) -> Outcome:
    from services.scorer.policy import Policy

    rig, p = ctx.rig, ctx.params
    prefix = rig.new_prefix("retention")
    compact = {"segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0",
               "min.compaction.lag.ms": "0"}
    for base in (topics.SCORER_STATE, topics.RISK):
        rig.alter_topic(prefix + base, compact)
    now = datetime.now(UTC)
    old_time = now - timedelta(days=20)
    old_numbers = [f"+3162{i:07d}" for i in range(60)]
    new_numbers = [f"+3163{i:07d}" for i in range(60)]
    records: list[tuple[bytes, bytes]] = []
    for i, number in enumerate(old_numbers):
        records.append((f"old-sim-{i}".encode(), _event(f"old-sim-{i}", old_time, number, "", "sim")))
        for j in range(3):
            records.append((f"old-{i}-{j}".encode(), _event(f"old-{i}-{j}", old_time + timedelta(minutes=j), number,
                                                            new_numbers[(i + j) % 60])))
    tail: list[tuple[bytes, bytes]] = []
    for i, number in enumerate(new_numbers):
        for j in range(3):
            tail.append((f"new-{i}-{j}".encode(), _event(f"new-{i}-{j}", now - timedelta(minutes=30 - j), number,
                                                         new_numbers[(i + 1) % 60])))
    for _, raw in records + tail:
        ctx.identifiers.add_raw(raw)
    # old traffic first, then fresh traffic on every partition: event time moves on past the TTL
    rig.produce(prefix + topics.RAW, records)
    ingest = rig.service("ingest", ["ingest"], prefix)
    scorer = rig.service("scorer", ["score"], prefix)
    ingest.start()
    scorer.start()
    views = [prefix + name for name in topics.SCORER_INPUTS]
    wait_until(lambda: rig.caught_up(ingest.group, [prefix + topics.RAW]), p.timeout_s, "ingest (old traffic)")
    wait_until(lambda: rig.caught_up(scorer.group, views), p.timeout_s, "scorer (old traffic)")
    rig.produce(prefix + topics.RAW, tail)
    wait_until(lambda: rig.caught_up(ingest.group, [prefix + topics.RAW]), p.timeout_s, "ingest (fresh traffic)")
    wait_until(lambda: rig.caught_up(scorer.group, views), p.timeout_s, "scorer (fresh traffic)")
    ingest.stop()
    scorer.stop()

    old_entities: set[str] = set()
    for rec in rig.records(prefix + topics.NUMBERS):
        for view in decode_views(rec.value):
            if view.occurred_ms < int((now - timedelta(days=15)).timestamp() * 1000):
                old_entities.add(view.entity)
    new_entities: set[str] = set()
    for rec in rig.records(prefix + topics.NUMBERS):
        for view in decode_views(rec.value):
            if view.occurred_ms >= int((now - timedelta(hours=2)).timestamp() * 1000):
                new_entities.add(view.entity)
    old_only = old_entities - new_entities
    state_keys = {b"n" + bytes.fromhex(e) for e in old_only}
    risk_keys = {f"number:{e}".encode() for e in old_only}

    def latest(topic: str, keys: set[bytes]) -> dict[bytes, bytes | None]:
        out: dict[bytes, bytes | None] = {}
        for rec in rig.records(topic):
            if rec.key in keys:
                out[rec.key] = rec.value
        return out

    def state_values(topic: str, keys: set[bytes], compact: bool) -> int:
        """Entities of ``keys`` with a value in the bundled scorer changelog (services/scorer/
        state/changelog.py): in the records a restore uses (``compact``: latest per record key, no
        tombstoned record) or in every record physically present."""
        from services.scorer.state.changelog import DELTA_PREFIX, SNAPSHOT_PREFIX, unpack_entries

        kept: dict[bytes, bytes | None] = {}
        physical: list[bytes] = []
        for rec in rig.records(topic):
            # deltas and snapshot pieces hold entity records (not the manifest, the commit
            # marker or the models' records)
            if rec.key and rec.key[:2] in (DELTA_PREFIX, SNAPSHOT_PREFIX):
                kept[rec.key] = rec.value
                if rec.value is not None:
                    physical.append(rec.value)
        values = [v for v in kept.values() if v is not None] if compact else physical
        return len({k for v in values for k, item in unpack_entries(v) if item is not None} & keys)

    risk_latest = latest(prefix + topics.RISK, risk_keys)
    state_live = state_values(prefix + topics.SCORER_STATE, state_keys, compact=True)
    risk_live = sum(1 for v in risk_latest.values() if v is not None)
    risk_had = len(risk_latest)

    # a restored engine (what a new replica would rebuild) must not know them
    from services.scorer.partition import PartitionScorer

    settings_env = rig.env(prefix)
    from services.common.config import CommonSettings

    with rig.keys_in_environ():
        pseudo = CommonSettings(bootstrap=settings_env["FRAUDRADAR_BOOTSTRAP"]).pseudonymizer()
    engines = {part: PartitionScorer(Policy.load(pseudo), pseudo, partition=part) for part in range(rig.partitions)}
    for rec in rig.records(prefix + topics.SCORER_STATE):
        if rec.key and rec.key != b"__models__":
            engines[rec.partition].state.apply_changelog(rec.key, rec.value)
    for engine in engines.values():
        engine.state.finish_restore()
    restored_known = sum(1 for e in old_only for eng in engines.values()
                         if eng.features_of("number", e) is not None)

    # physically gone after compaction: roll the active segments, then wait for the cleaner
    def values_left() -> int:
        time.sleep(1.2)
        producer = rig.producer()
        for base in (topics.SCORER_STATE, topics.RISK):
            for part in range(rig.partitions):
                producer.send(prefix + base, key=b"__roll__", value=None, partition=part)
        producer.flush(30)
        producer.close()
        time.sleep(2.0)
        left_risk = latest(prefix + topics.RISK, risk_keys)
        n_values = state_values(prefix + topics.SCORER_STATE, state_keys, compact=False)
        n_values += sum(1 for rec in rig.records(prefix + topics.RISK)
                        if rec.key in risk_keys and rec.value is not None)
        ctx.notes["retention_tombstones_left"] = sum(1 for v in left_risk.values() if v is None)
        return n_values

    compacted_values = values_left()
    deadline = time.monotonic() + 90
    while compacted_values and time.monotonic() < deadline:
        compacted_values = values_left()
    figure = {
        "expired_entities": len(old_only), "fresh_entities": len(new_entities),
        "state_latest_live": state_live, "risk_keys_seen": risk_had, "risk_latest_live": risk_live,
        "restored_engine_knows": restored_known, "values_left_after_compaction": compacted_values,
        "tombstones_left_after_compaction": ctx.notes.get("retention_tombstones_left"),
    }
    ttl_days = Policy.load(pseudo).ttl_ms / 86_400_000
    passed = (len(old_only) > 0 and state_live == 0 and risk_live == 0 and restored_known == 0
              and compacted_values == 0 and risk_had > 0)
    detail = (f"{len(old_only)} numbers idle 20 days (TTL {ttl_days:.0f} d): live in the restorable state for "
              f"{state_live}, latest risk record live for {risk_live} (of {risk_had} with risk records), a restored "
              f"engine knows {restored_known}; after log compaction {compacted_values} values remain in "
              f"scorer-state and risk")
    return Outcome(passed, figure, detail)


def run(ctx: Context) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    try:
        out["privacy_retention"] = retention(ctx)
    except Exception as exc:
        out["privacy_retention"] = Outcome.crashed(exc)
    if "privacy_audit" in ctx.notes:
        out["privacy_audit"] = ctx.notes["privacy_audit"]  # type: ignore[assignment]
    else:
        out["privacy_audit"] = Outcome.not_run("the API scenario did not run first (it makes the lookups)")
    out["privacy_plaintext"] = plaintext(ctx)
    return out
