"""Test helpers that read and write the real broker (no mocks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def produce_all(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all")
    n = 0
    for key, value in records:
        producer.send(topic, key=key, value=value)
        n += 1
    producer.flush(60)
    producer.close()
    return n


def read_all(bootstrap: str, topic: str, *, expect_at_least: int = 0, timeout_s: float = 60.0,
             settle_s: float = 1.5, count: Callable[[Any], int] | None = None) -> list[Any]:
    """Every record of ``topic`` from the beginning: waits until ``expect_at_least`` units arrived,
    then until nothing new arrived for ``settle_s``; ``timeout_s`` bounds it all.

    A unit is a record, or what ``count(record)`` says the record holds (``views_in`` for the
    views topics, where one record carries a bundle of views): comparing a number of views with a
    number of records would never hold and every wait would run to its timeout."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=500, max_poll_records=5000, isolation_level="read_committed")
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out: list[Any] = []
    units = 0
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    while time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=300)
        got = sum(len(v) for v in batch.values())
        for recs in batch.values():
            out.extend(recs)
            units += sum(count(r) for r in recs) if count is not None else len(recs)
        if got:
            last_new = time.monotonic()
        elif units >= expect_at_least and time.monotonic() - last_new > settle_s:
            break
    consumer.close()
    return out


def views_in(record: Any) -> int:
    """How many views one record of a views topic carries (they travel bundled)."""
    from services.common.records import decode_views

    return len(decode_views(record.value))


def header(record: Any, name: str) -> str | None:
    for k, v in record.headers or []:
        if k == name:
            return bytes(v).decode()
    return None
