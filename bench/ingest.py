"""Ingest throughput against a raw kafka-python pass-through, on the same data in the same run.

    python bench/ingest.py --json bench/results/ingest.json [--events 200000] [--bootstrap HOST:PORT]

Starts its own single-node broker (the project's launcher) when no ``--bootstrap`` is given,
preloads the raw topic, then measures

1. ``passthrough``: kafka-python consume → produce the same bytes → flush → commit, the floor
   of any Python stream processor here;
2. ``ingest``: the real ingest step (``StreamRunner`` + ``IngestProcessor``: decode, validate,
   normalise, pseudonymise, seal, 2-3 views per event, DLQ) over the same records, exactly-once
   (the service's default: a transaction per commit) and then at least once,

each with a fresh consumer group, and writes both rates and their ratio (target ≥ 0.5).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata
from tqdm import tqdm

from services.common import topics
from services.common.pseudonym import generate_key_text
from services.common.stream import OutputSink, Record, StreamConfig, StreamRunner
from services.common.topics import ensure_topics
from services.devtools.kafka_local import LocalKafka
from tests.support.kafka_io import produce_all
from tests.support.streams import mixed_stream


def passthrough(bootstrap: str, src: str, dst: str, n: int, batch: int) -> float:
    consumer = KafkaConsumer(src, bootstrap_servers=bootstrap, group_id=f"bench-pt-{uuid.uuid4().hex[:6]}",
                             enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=batch,
                             fetch_max_bytes=32 * 1024 * 1024, max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=100, batch_size=256 * 1024)
    seen = 0
    started = None
    bar = tqdm(total=n, desc="passthrough", unit="ev", file=sys.stderr)
    while seen < n:
        polled = consumer.poll(timeout_ms=500, max_records=batch)
        if not polled:
            continue
        started = started or time.perf_counter()
        futures = []
        offsets = {}
        for tp, recs in polled.items():
            for r in recs:
                futures.append(producer.send(dst, key=r.key, value=r.value))
            offsets[tp] = OffsetAndMetadata(recs[-1].offset + 1, "", -1)
            seen += len(recs)
            bar.update(len(recs))
        producer.flush()
        for f in futures:
            f.get()
        consumer.commit(offsets)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    bar.close()
    consumer.close()
    producer.close()
    return n / elapsed


class _Counting:
    def __init__(self, inner: Any, n: int, runner_box: list[StreamRunner]) -> None:
        self.inner, self.n, self.box = inner, n, runner_box
        self.seen = 0
        self.started: float | None = None
        self.bar = tqdm(total=n, desc="ingest", unit="ev", file=sys.stderr)

    def process(self, records: list[Record], sink: OutputSink) -> None:
        self.started = self.started or time.perf_counter()
        self.inner.process(records, sink)
        self.seen += len(records)
        self.bar.update(len(records))
        if self.seen >= self.n:
            self.box[0].stop_event.set()

    def on_assigned(self, partitions: set[Any]) -> None:
        return None

    def on_revoked(self, partitions: set[Any]) -> None:
        return None


def ingest_rate(bootstrap: str, prefix: str, n: int, batch: int, exactly_once: bool) -> tuple[float, int]:
    from services.common.stream import CommitPolicy
    from services.ingest.service import IngestProcessor, IngestSettings, build_pipeline

    settings = IngestSettings(bootstrap=bootstrap, topic_prefix=prefix)
    processor = IngestProcessor(settings, build_pipeline(settings))
    box: list[StreamRunner] = []
    counting = _Counting(processor, n, box)
    config = StreamConfig(service="ingest", group_id=f"bench-ingest-{uuid.uuid4().hex[:6]}",
                          topics=[settings.topic(topics.RAW)], dlq_topic=settings.topic(topics.DLQ),
                          max_poll_records=batch, commit=CommitPolicy(settings.commit_interval_s),
                          exactly_once=exactly_once, transaction_timeout_ms=settings.transaction_timeout_ms,
                          transactional_id=f"bench-ingest-{uuid.uuid4().hex[:6]}")
    runner = StreamRunner(settings, config, counting)
    box.append(runner)
    runner.run()
    counting.bar.close()
    elapsed = time.perf_counter() - (counting.started or time.perf_counter())
    return n / elapsed, runner.sink.sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, type=Path, help="where to write the results")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2000, help="max records per poll (both runs)")
    parser.add_argument("--bootstrap", help="an existing broker; default: start one")
    args = parser.parse_args()

    os.environ.setdefault("FRAUDRADAR_PSEUDONYM_KEY", generate_key_text("bench"))
    os.environ.setdefault("FRAUDRADAR_DISCLOSURE_KEY", generate_key_text("benchd"))
    owned = contextlib.ExitStack()     # a broker this bench starts (and deletes)
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:   # its own broker, deleted afterwards
        bootstrap = owned.enter_context(LocalKafka.temporary("bench-kafka-", fast_start=False, heap="1g")).bootstrap
    with owned:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        ensure_topics(bootstrap, prefix, partitions=args.partitions)
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(prefix + "bench.passthrough", args.partitions, 1)])
        admin.close()
        print(f"generating {args.events} events...", file=sys.stderr)
        from datetime import UTC, datetime, timedelta

        base = datetime.now(UTC) - timedelta(milliseconds=50 * args.events) - timedelta(minutes=10)
        stream = mixed_stream(args.events, bad_ratio=0.02, seed=3, base=base)
        print("preloading the raw topic...", file=sys.stderr)
        produce_all(bootstrap, prefix + topics.RAW, stream.records)
        pt = passthrough(bootstrap, prefix + topics.RAW, prefix + "bench.passthrough", args.events, args.batch)
        # the service's default (exactly-once: views, dead letters and offsets in one transaction
        # per commit), then at least once (offsets committed after the outputs' acknowledgement)
        rate, outputs = ingest_rate(bootstrap, prefix, args.events, args.batch, exactly_once=True)
        rate_alo, _ = ingest_rate(bootstrap, prefix, args.events, args.batch, exactly_once=False)
    result = {
        "benchmark": "ingest",
        "events": args.events,
        "partitions": args.partitions,
        "passthrough_events_per_s": round(pt, 1),
        "ingest_events_per_s": round(rate, 1),
        "ratio": round(rate / pt, 3),
        "ingest_at_least_once_events_per_s": round(rate_alo, 1),
        "target_ratio": 0.5,
        "outputs_per_event": round(outputs / args.events, 3),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
