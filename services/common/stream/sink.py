"""The sink: a batch's outputs and dead letters, sent and then checked before anything commits."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer

from services.common import metrics
from services.common.stream.dlq import DlqGuard, Record, dead_letter_headers
from services.common.stream.exceptions import DeliveryFailed


class OutputSink:
    """Collects the futures of one batch's outputs; ``dead_letter`` routes poison to the DLQ."""

    def __init__(self, producer: KafkaProducer, service: str, dlq_topic: str, guard: DlqGuard) -> None:
        self._producer = producer
        self._service = service
        self._dlq_topic = dlq_topic
        self._guard = guard
        self._partition_counts: dict[str, int] = {}
        self._futures: list[Any] = []
        self.sent = 0
        # the current batch's dead letters (topic, key, value, headers): after a DLQ-limit stop
        # the runner writes them again on their own (their transaction was aborted)
        self.batch_dead_letters: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    def use(self, producer: KafkaProducer) -> None:
        """Send through ``producer`` from now on (a fenced transactional producer was replaced)."""
        self._producer = producer
        self._futures.clear()

    def send(self, topic: str, key: bytes | None, value: bytes | None,
             headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> Any:
        """Produce one record; with a key and no partition, Kafka's default partitioner (cached).

        Returns the producer's future (after ``flush_and_check``: done, its value the record's
        metadata, e.g. the offset it got)."""
        if partition is None and key is not None:
            partition = murmur2_partition(key, self.partitions(topic))
        future = self._producer.send(topic, key=key, value=value, headers=headers, partition=partition)
        self._futures.append(future)
        self.sent += 1
        return future

    def partitions(self, topic: str) -> int:
        """Partition count of ``topic`` (cached; blocks on metadata the first time)."""
        count = self._partition_counts.get(topic)
        if count is None:
            parts = self._producer.partitions_for(topic)
            if not parts:
                raise DeliveryFailed(f"topic {topic} has no partitions (does it exist?)")
            count = self._partition_counts[topic] = len(parts)
        return count

    def ok(self, record: Record) -> None:
        """The record was handled normally (feeds the DLQ ratio guard)."""
        self._guard.record((record.topic, record.partition), False)

    def dead_letter(self, record: Record, reason: str, detail: str) -> None:
        headers = dead_letter_headers(record, self._service, reason, detail)
        self._futures.append(self._producer.send(self._dlq_topic, key=record.key, value=record.value,
                                                 headers=headers))
        self.batch_dead_letters.append((self._dlq_topic, record.key, record.value, headers))
        metrics.DLQ.labels(self._service, reason).inc()
        self._guard.record((record.topic, record.partition), True)

    def flush_and_check(self, timeout_s: float) -> None:
        """Step 2 of the commit path: every output of the batch acknowledged, or raise."""
        self._producer.flush(timeout=timeout_s)
        try:
            for future in self._futures:
                future.get(timeout=0.0 if future.is_done else timeout_s)
        except Exception as exc:
            raise DeliveryFailed(f"output not acknowledged: {type(exc).__name__}: {exc}") from exc
        finally:
            self._futures.clear()


def _murmur2(data: bytes) -> int:
    from kafka.partitioner import murmur2

    return int(murmur2(data))


_MURMUR_CACHE: dict[bytes, int] = {}


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partition for a key (Java-compatible murmur2), cached per key."""
    h = _MURMUR_CACHE.get(key)
    if h is None:
        if len(_MURMUR_CACHE) > 1 << 20:
            _MURMUR_CACHE.clear()
        h = _MURMUR_CACHE[key] = _murmur2(key) & 0x7FFFFFFF
    return h % partitions
