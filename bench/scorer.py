"""Scorer benchmark on a real broker: throughput vs a raw consume, latency, state size, restore.

    python bench/scorer.py --json bench/results/scorer.json [--bootstrap HOST:PORT] [--views 300000]

1. Throughput: the same view bundles (ingest's format) are read by a raw kafka-python consumer
   (consume + ``decode_views``) and by the scorer service's own loop (``ScorerRunner``: decode,
   engine, outputs, changelog, commits), one after the other, in the same run; then by the same
   loop with the compiled parts (record update, sweep scan, HST walks) in Python instead
   (``views_per_s_python``, ``compiled_speedup``), and by the engine alone without Kafka,
   compiled vs Python (``engine_us_per_view*``).
2. Latency: after an untimed warm-up (restores, first model trees), views are produced at half
   the scorer's measured rate with ``ingested_ms`` = now; event-to-alert = alert record
   timestamp (set when the scorer produced it) - ``ingested_ms``.
3. State: bytes per tracked entity at 1M entities (RSS growth and the store's own accounting),
   and the pause of a sweep over them when nothing is due (``sweep_1m_s``, compiled scan;
   ``sweep_1m_s_python``).
4. Restore: 1M entities on one ``scorer-state`` partition (the bundled changelog of their first
   commit: a delta and a snapshot generation, 2x the state) replayed by ``restore``.

Wall-clock rates swing with the load of a shared machine, so the per-CPU-second rates of the
same runs are written too (``*_per_cpu_s``, ``throughput_ratio_cpu``, ``load_average``).

Writes ``throughput_ratio``, ``views_per_s``, ``latency_p50_s``, ``latency_p99_s``,
``bytes_per_entity``, ``restore_1m_s`` (+ details). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import REGISTRY
from tqdm import tqdm

from models import hst
from services.common import topics
from services.common.pseudonym import Pseudonymizer, generate_key_text, parse_key
from services.common.records import View, decode_alert, decode_views, encode_view_bundle
from services.common.stream import murmur2_partition
from services.common.topics import ensure_topics
from services.devtools.synthetic import Generator
from services.scorer import features as F
from services.scorer.output import EngineOutput
from services.scorer.partition import PartitionScorer
from services.scorer.service import build
from services.scorer.settings import ScorerSettings

PARTITIONS = 3


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _views(n_target: int, seed: int) -> list[View]:
    gen = Generator(seed=seed)
    normal = max(500, n_target // 45)
    lab = gen.stream(normal=normal, hours=6, fraud_start_h=1)
    for i in range(20):       # more farms, so the latency phase has alerts to time
        gen._sms_farm(lab, [], gen.start_ms + (i + 2) * 600_000, gen.start_ms, strength=0.5, banks=[])
    lab.views.sort(key=lambda v: v.occurred_ms)
    return lab.views[:n_target]


def _bundles(views: list[View], prefix: str) -> list[tuple[str, int, bytes, int]]:
    """(topic, partition, bundle bytes, n views) in ingest's format: <= 500 views per record."""
    groups: dict[tuple[str, int], list[View]] = {}
    out = []
    for view in views:
        topic = prefix + (topics.NUMBERS if view.entity_type == "number" else topics.DEVICES)
        key = (topic, murmur2_partition(view.entity.encode(), PARTITIONS))
        group = groups.setdefault(key, [])
        group.append(view)
        if len(group) == 500:
            out.append((key[0], key[1], encode_view_bundle(group), len(group)))
            groups[key] = []
    out += [(t, p, encode_view_bundle(g), len(g)) for (t, p), g in groups.items() if g]
    return out


def _produce(bootstrap: str, bundles: list[tuple[str, int, bytes, int]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=8 << 20,
                             batch_size=1 << 20)
    for topic, partition, value, _ in bundles:
        producer.send(topic, value=value, partition=partition)
    producer.flush()
    producer.close()


def raw_consume(bootstrap: str, prefix: str, total: int) -> tuple[float, float]:
    """(views/s wall, views per CPU-second of this process) of consume + decode."""
    consumer = KafkaConsumer(prefix + topics.NUMBERS, prefix + topics.DEVICES, bootstrap_servers=bootstrap,
                             group_id=f"raw-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
                             enable_auto_commit=False, max_poll_records=2000,
                             fetch_max_bytes=32 << 20, max_partition_fetch_bytes=4 << 20)
    seen, started, cpu_started = 0, None, 0.0
    while seen < total:
        for recs in consumer.poll(timeout_ms=500).values():
            if started is None:
                started, cpu_started = time.perf_counter(), time.process_time()
            for rec in recs:
                seen += len(decode_views(rec.value))
    elapsed = time.perf_counter() - (started or time.perf_counter())
    cpu = time.process_time() - cpu_started
    consumer.close()
    return total / elapsed, total / cpu


def _scorer(bootstrap: str, prefix: str, group: str) -> tuple[object, object]:
    os.environ.update(FRAUDRADAR_BOOTSTRAP=bootstrap, FRAUDRADAR_TOPIC_PREFIX=prefix, FRAUDRADAR_GROUP_ID=group,
                      FRAUDRADAR_COMMIT_INTERVAL_S="2")
    runner, processor, _ = build(ScorerSettings())
    return runner, processor


def scorer_throughput(bootstrap: str, prefix: str, total: int) -> tuple[float, float, dict[str, int]]:
    """(views/s wall, views per CPU-second, engine counters) of the scorer's own service loop.

    From the first polled batch to the last commit (the changelog is part of the cost). CPU
    time counts every thread of the process (kafka-python's IO thread too); on a shared
    machine it is the steadier of the two numbers.
    """
    runner, processor = _scorer(bootstrap, prefix, f"bench-{uuid.uuid4().hex[:6]}")
    state = {"started": 0.0, "cpu": 0.0}
    original = processor.process  # type: ignore[attr-defined]

    def applied() -> int:
        # the service's own counter: each view once (replays after a restore are skipped), and it
        # survives an engine being replaced by a restore (a rebalance right after the first join,
        # whose first record is on a topic the engine has not seen yet, e.g. fraudradar.links)
        return int(sum(REGISTRY.get_sample_value("fraudradar_scorer_views_total", {"entity_type": kind}) or 0
                       for kind in ("number", "device")))

    already = applied()         # the counter is the process's: a second run in the same process

    def process(records: list, sink: object) -> None:
        if not state["started"]:
            state["started"], state["cpu"] = time.perf_counter(), time.process_time()
        original(records, sink)
        if applied() - already >= total:
            runner.stop_event.set()  # type: ignore[attr-defined]

    processor.process = process  # type: ignore[attr-defined]
    runner.run()  # type: ignore[attr-defined]   # the final commit (changelog included) is timed too
    elapsed = time.perf_counter() - state["started"]
    cpu = time.process_time() - state["cpu"]
    counters: dict[str, int] = {}
    for owned in processor.owned.values():  # type: ignore[attr-defined]
        for k, v in owned.scorer.counters.items():
            counters[k] = counters.get(k, 0) + v
    return total / elapsed, total / cpu, counters


@contextlib.contextmanager
def _compiled_parts(on: bool) -> Iterator[None]:
    """With the compiled parts (record update, sweep scan, HST walks) or, ``on=False``, their
    Python references: what ``FRAUDRADAR_PURE_PYTHON=1`` runs."""
    saved = F.COMPILED_APPLY, F.COMPILED_SCAN, hst.COMPILED_WALK
    if not on:
        F.COMPILED_APPLY = F.COMPILED_SCAN = hst.COMPILED_WALK = None
    try:
        yield
    finally:
        F.COMPILED_APPLY, F.COMPILED_SCAN, hst.COMPILED_WALK = saved


def engine_alone(views: list[View], pseudonymizer: Pseudonymizer, rounds: int = 2) -> dict[str, float]:
    """CPU µs per view of the engine alone (no Kafka), compiled parts vs Python, alternated."""
    best = {"compiled": float("inf"), "python": float("inf")}
    for _ in range(rounds):
        for mode in ("compiled", "python"):
            with _compiled_parts(mode == "compiled"):
                engine = PartitionScorer.default(pseudonymizer)     # takes the parts in force
                gc.collect()
                started = time.process_time()
                for offset, view in enumerate(views):
                    engine.process(view, offset=offset)
                best[mode] = min(best[mode], (time.process_time() - started) / len(views) * 1e6)
    return {"engine_us_per_view": round(best["compiled"], 2), "engine_us_per_view_python": round(best["python"], 2),
            "engine_compiled_speedup": round(best["python"] / best["compiled"], 3)}


def _paced_producer(bootstrap: str, prefix: str, views: list[View], rate: float, start_at: float) -> None:
    """Child process: warm-up views at once, then ``views`` at ``rate`` from wall time ``start_at``.

    A separate process, so building and sending views does not take the scorer's GIL.
    """
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_request_size=8 << 20)
    # warm-up (not timed: no ingested_ms): partition restores, the feedback feed and the
    # models' first trees happen on the first records; latency is a steady-state property
    warm, views = views[:2000], views[2000:]
    for topic, partition, value, _ in _bundles(warm, prefix):
        producer.send(topic, value=value, partition=partition)
    producer.flush()
    time.sleep(max(0.0, start_at - time.time()))
    tick = 0.02
    per_tick = max(1, int(rate * tick))
    next_at = time.perf_counter()
    for start in tqdm(range(0, len(views), per_tick), desc="latency", file=sys.stderr, leave=False):
        now_ms = int(time.time() * 1000)
        chunk = [msgspec.structs.replace(v, ingested_ms=now_ms) for v in views[start:start + per_tick]]
        for topic, partition, value, _ in _bundles(chunk, prefix):
            producer.send(topic, value=value, partition=partition)
        next_at += tick
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    producer.flush()
    producer.close()


def latency(bootstrap: str, prefix: str, views: list[View], rate: float) -> dict[str, float]:
    start_at = time.time() + 8.0      # group join + warm-up first
    child = multiprocessing.get_context("spawn").Process(
        target=_paced_producer, args=(bootstrap, prefix, views, rate, start_at), daemon=True)
    child.start()
    runner, _ = _scorer(bootstrap, prefix, f"lat-{uuid.uuid4().hex[:6]}")
    thread = threading.Thread(target=runner.run, daemon=True)  # type: ignore[attr-defined]
    thread.start()
    child.join()
    time.sleep(5.0)
    runner.stop_event.set()  # type: ignore[attr-defined]
    thread.join(timeout=60)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed")
    tps = [TopicPartition(prefix + topics.ALERTS, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    lat: list[float] = []
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        for recs in consumer.poll(timeout_ms=500).values():
            for rec in recs:
                alert = decode_alert(rec.value)
                if alert.ingested_ms:
                    lat.append((rec.timestamp - alert.ingested_ms) / 1000)
    consumer.close()
    lat.sort()
    if not lat:
        return {"alerts": 0}
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return {"alerts": len(lat), "latency_p50_s": lat[len(lat) // 2], "latency_p99_s": p99, "latency_max_s": lat[-1]}


def state_size(n: int, pseudonymizer: Pseudonymizer) -> tuple[float, float, PartitionScorer]:
    engine = PartitionScorer.default(pseudonymizer)
    gen = Generator(seed=5)
    gc.collect()
    before = _rss_bytes()
    t0 = gen.start_ms
    for i in tqdm(range(n), desc="1M entities", file=sys.stderr, leave=False):
        entity = f"{(i * 2654435761) & ((1 << 128) - 1):032x}"
        engine.process(gen.sms(entity, f"{i:032x}", t0 + i)[0])
    for table in (engine.store.numbers, engine.store.devices):
        table.dirty.clear()  # transient: drained at every commit (restore() marks them again)
    gc.collect()
    rss = (_rss_bytes() - before) / n
    return rss, engine.state.state_bytes() / n, engine


def sweep(engine: PartitionScorer, rounds: int = 3) -> dict[str, float]:
    """Seconds of one sweep over ``engine``'s entities when nothing is due (the pause every
    ``state.sweep_every`` of event time costs): the scan, compiled and in Python, best of ``rounds``."""
    compiled = engine.sweeper.scan
    best = {"compiled": float("inf"), "python": float("inf")}
    for _ in range(rounds):
        for mode in ("compiled", "python"):
            engine.sweeper.scan = compiled if mode == "compiled" else None
            output = EngineOutput("number", "", 0)
            started = time.perf_counter()
            engine.sweeper.sweep(output)
            best[mode] = min(best[mode], time.perf_counter() - started)
            assert not output.tombstones and not output.risk_updates, "the bench's entities should all be live"
    engine.sweeper.scan = compiled
    return {"sweep_1m_s": round(best["compiled"], 4), "sweep_1m_s_python": round(best["python"], 4)}


def restore(bootstrap: str, prefix: str, engine: PartitionScorer) -> tuple[float, int, int]:
    """Seconds to restore ``engine``'s entities from the changelog its first commit writes.

    That commit holds a delta with every entity *and* a full snapshot generation, i.e. twice
    the state: the worst case a restore reads before compaction (see services/scorer/state/changelog.py).
    """
    for table in (engine.store.numbers, engine.store.devices):
        table.dirty = set(table.records)
    records = engine.state.commit_records()          # as the service writes a commit: closed by its marker
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20,
                             max_request_size=4 << 20)
    topic = prefix + topics.SCORER_STATE
    for key, value in tqdm(records, desc="changelog", file=sys.stderr, leave=False):
        producer.send(topic, key=key, value=value, partition=0)
    producer.flush()
    producer.close()
    n = len(engine.store)
    engine.store.numbers.records = {}
    engine.store.devices.records = {}
    gc.collect()
    _, processor = _scorer(bootstrap, prefix, "restore")
    started = time.perf_counter()
    restored = processor.restorer.restore(0)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    processor.close()  # type: ignore[attr-defined]
    return elapsed * 1_000_000 / max(1, n), sum(restored.scorer.state.entities().values()), len(records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--bootstrap", help="an existing broker (default: start a local one)")
    parser.add_argument("--views", type=int, default=300_000)
    parser.add_argument("--entities", type=int, default=1_000_000)
    args = parser.parse_args()
    os.environ.setdefault("FRAUDRADAR_PSEUDONYM_KEY", generate_key_text("bench"))
    pseudonymizer = Pseudonymizer(parse_key(os.environ["FRAUDRADAR_PSEUDONYM_KEY"]))
    owned = contextlib.ExitStack()     # a broker this bench starts (and deletes)
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        from services.devtools.kafka_local import LocalKafka

        # its own broker, deleted afterwards (the 1M-entity changelog and topics: ~1 GB)
        bootstrap = owned.enter_context(LocalKafka.temporary("bench-scorer-")).bootstrap
    with owned:
        result: dict[str, object] = {"partitions": PARTITIONS}
        views = _views(args.views, seed=1)
        prefix = f"b{uuid.uuid4().hex[:6]}."
        ensure_topics(bootstrap, prefix, partitions=PARTITIONS)
        _produce(bootstrap, _bundles(views, prefix))
        raw, raw_cpu = raw_consume(bootstrap, prefix, len(views))
        scored, scored_cpu, counters = scorer_throughput(bootstrap, prefix, len(views))
        if F.COMPILED_APPLY is not None:    # the same loop with every compiled part in Python (baseline)
            # its own topics: on the first run's, it would restore that run's state and skip every view
            py_prefix = f"p{uuid.uuid4().hex[:6]}."
            ensure_topics(bootstrap, py_prefix, partitions=PARTITIONS)
            _produce(bootstrap, _bundles(views, py_prefix))
            with _compiled_parts(False):
                scored_py, scored_py_cpu, _ = scorer_throughput(bootstrap, py_prefix, len(views))
            result.update(record_update="compiled", views_per_s_python=round(scored_py),
                          views_per_cpu_s_python=round(scored_py_cpu),
                          compiled_speedup=round(scored / scored_py, 3),
                          compiled_speedup_cpu=round(scored_cpu / scored_py_cpu, 3),
                          **engine_alone(views, pseudonymizer))
        else:
            result.update(record_update="python")
        result.update(views=len(views), raw_views_per_s=round(raw), views_per_s=round(scored),
                      throughput_ratio=round(scored / raw, 3),
                      raw_views_per_cpu_s=round(raw_cpu), views_per_cpu_s=round(scored_cpu),
                      throughput_ratio_cpu=round(scored_cpu / raw_cpu, 3),
                      load_average=os.getloadavg()[0], engine_counters=counters)
        print(f"raw {raw:.0f} views/s ({raw_cpu:.0f}/cpu-s), scorer {scored:.0f} views/s "
              f"({scored_cpu:.0f}/cpu-s), with the compiled parts in Python {result.get('views_per_s_python')} views/s",
              file=sys.stderr)
        lat_prefix = f"l{uuid.uuid4().hex[:6]}."
        ensure_topics(bootstrap, lat_prefix, partitions=PARTITIONS)
        half = scored / 2
        lat_views = views[: int(half * 30)]     # ~30 s at half the maximum rate
        result.update(latency_rate_views_per_s=round(half), **latency(bootstrap, lat_prefix, lat_views, half))
        rss, accounted, engine = state_size(args.entities, pseudonymizer)
        result.update(entities=args.entities, bytes_per_entity=round(rss, 1),
                      bytes_per_entity_accounted=round(accounted, 1), **sweep(engine))
        res_prefix = f"r{uuid.uuid4().hex[:6]}."
        ensure_topics(bootstrap, res_prefix, partitions=PARTITIONS)
        restore_s, restored, state_records = restore(bootstrap, res_prefix, engine)
        result.update(restore_1m_s=round(restore_s, 2), restored_entities=restored,
                      restore_changelog_records=state_records)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
