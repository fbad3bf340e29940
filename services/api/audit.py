"""Reading the audit trail back: "who looked up this entity, when, for what purpose".

Audit records are keyed by ``type:pseudonym``, so the scan compares keys and decodes only the
matches. It reads from the first offset at or after ``since`` to the end offsets taken at the
start (or ``until``), within a time budget; ``complete`` says whether it got to the end.
Blocking: run it in a worker thread.
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from services.common.records import AuditRecord, decode_audit


def scan_audit(
    kafka_config: dict[str, Any],
    topic: str,
    entity_key: str,
    *,
    since_ms: int,
    until_ms: int,
    limit: int,
    budget_s: float,
) -> tuple[list[AuditRecord], bool]:
    key = entity_key.encode()
    deadline = time.monotonic() + budget_s
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, max_poll_records=5000, **kafka_config)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return [], True
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        starts = consumer.offsets_for_times({tp: since_ms for tp in tps})
        remaining = set()
        for tp in tps:
            hit = starts.get(tp)
            if hit is None or hit.offset >= ends[tp]:
                continue
            consumer.seek(tp, hit.offset)
            remaining.add(tp)
        found: list[AuditRecord] = []
        while remaining and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp] or record.timestamp > until_ms:
                        remaining.discard(tp)
                        break
                    if record.key == key and record.value is not None:
                        found.append(decode_audit(record.value))
                        if len(found) >= limit:
                            return found, False
            for tp in list(remaining):
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found, not remaining
    finally:
        consumer.close()
