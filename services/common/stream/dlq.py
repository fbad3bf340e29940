"""The dead-letter queue: poison input goes there with its reason, and too much of it stops the loop."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from services.common.stream.exceptions import DlqLimitExceeded


class Record(Protocol):
    """The parts of a kafka-python ``ConsumerRecord`` that processors use."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    timestamp: int


@dataclass(frozen=True)
class DlqLimit:
    """Stop when, per partition, more than ``max_invalid_ratio`` of the last ``window`` records
    were dead-lettered (once at least ``min_records`` were seen), or ``max_consecutive`` in a row."""

    max_invalid_ratio: float = 0.5
    max_consecutive: int = 1000
    window: int = 1000
    min_records: int = 200


class DlqGuard:
    """Per-partition sliding window of outcomes with a running invalid count (O(1) per record)."""

    def __init__(self, limit: DlqLimit) -> None:
        self.limit = limit
        # (topic, partition) -> [recent outcomes, invalid in window, consecutive invalid]
        self._state: dict[tuple[str, int], tuple[deque[bool], list[int]]] = {}

    def record(self, tp: tuple[str, int], invalid: bool) -> None:
        state = self._state.get(tp)
        if state is None:
            state = self._state[tp] = (deque(maxlen=self.limit.window), [0, 0])
        recent, counts = state
        if len(recent) == recent.maxlen and recent[0]:
            counts[0] -= 1
        recent.append(invalid)
        if not invalid:
            counts[1] = 0
            return
        counts[0] += 1
        counts[1] += 1
        topic, partition = tp
        if counts[1] > self.limit.max_consecutive:
            raise DlqLimitExceeded(f"{counts[1]} consecutive invalid records on {topic}[{partition}]")
        if len(recent) >= self.limit.min_records:
            ratio = counts[0] / len(recent)
            if ratio > self.limit.max_invalid_ratio:
                raise DlqLimitExceeded(
                    f"{ratio:.0%} of the last {len(recent)} records on {topic}[{partition}] were invalid")

    def forget(self, tps: Iterable[tuple[str, int]]) -> None:
        for tp in tps:
            self._state.pop(tuple(tp), None)  # type: ignore[arg-type]


def dead_letter_headers(record: Record, service: str, reason: str, detail: str) -> list[tuple[str, bytes]]:
    """The record's own headers (not ours) plus why and where it failed."""
    headers = [(k, v) for k, v in (record.headers or []) if not k.startswith("fraudradar.")]
    headers += [
        ("reason", reason.encode()),
        ("fraudradar.detail", detail[:500].encode("utf-8", "replace")),
        ("fraudradar.source_topic", record.topic.encode()),
        ("fraudradar.source_partition", str(record.partition).encode()),
        ("fraudradar.source_offset", str(record.offset).encode()),
        ("fraudradar.service", service.encode()),
        ("fraudradar.failed_at", datetime.now(UTC).isoformat().encode()),
    ]
    return headers
