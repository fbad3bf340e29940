"""What the loop tells the outside: liveness and readiness (``Health``), lag and batch metrics,
and the start-up check that kafka-python will decode at C speed."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from services.common import metrics
from services.common.http import Health
from services.common.stream.exceptions import Crc32cMissing


def check_crc32c() -> None:
    """Fail fast if the ``crc32c`` C extension is missing (kafka-python decodes 10x slower)."""
    try:
        import crc32c  # noqa: F401
    except ImportError as exc:
        raise Crc32cMissing("the 'crc32c' package is not installed: pip install crc32c") from exc


class LoopProbes:
    """The loop's health (``/healthz``, ``/readyz``) and its consumer metrics."""

    def __init__(self, service: str, health: Health, consumer: KafkaConsumer) -> None:
        self.service = service
        self.health = health
        self.consumer = consumer

    def beat(self) -> None:
        self.health.beat()

    def caught_up(self) -> None:
        self.health.set_ready(True, "caught up")

    def polled(self, polled: dict[TopicPartition, list[Any]]) -> float:
        """Count a batch's records; returns when its handling started."""
        for tp, recs in polled.items():
            metrics.CONSUMER_RECORDS.labels(self.service, tp.topic).inc(len(recs))
        return time.perf_counter()

    def handled(self, polled: dict[TopicPartition, list[Any]], started: float) -> None:
        """The batch is processed and flushed: each partition's lag and the batch's duration."""
        for tp, recs in polled.items():
            high = self.consumer.highwater(tp)
            if high is not None:
                metrics.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(
                    max(0, high - (recs[-1].offset + 1)))
        metrics.BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started)
