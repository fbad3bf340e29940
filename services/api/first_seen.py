"""Numbers the network saw for the first time within the last day: a call's counterpart class.

The scorer holds every number's history (all event types, durable in its changelog, forgotten
after its idle horizon) and writes a ``FirstSeen`` record to ``fraudradar.first-seen`` when it
creates a number's state (``services/common/first_seen.py``). Every API replica reads every
partition (no consumer group, ``read_committed``: the scorer writes in transactions) into
``FirstSeenIndex`` and the call-state check asks it whether a call's counterpart was first
seen within ``horizon_ms`` (a day). At start (a restart too) the feed seeks each partition to
the records of the last ``horizon_ms`` (``offsets_for_times``) and replays them into an empty
index, so nothing is kept on disk; the topic keeps two days.

Memory: a 64-bit prefix of the pseudonym (itself a keyed hash) and the event time per number,
at most ``max_items`` (the oldest dropped first, counted); entries older than the horizon are
dropped as they age, oldest arrival first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import msgspec
from kafka import TopicPartition
from prometheus_client import Counter, Gauge

from services.api.kafka_io import TopicReplay
from services.api.metrics import _metric
from services.common.first_seen import FirstSeen, decode_first_seen

log = logging.getLogger("fraudradar.api.first_seen")
DAY_MS = 24 * 3600 * 1000

HELD = _metric(Gauge, "fraudradar_api_first_seen_numbers",
               "numbers first seen within the last day held in this replica's index")
DROPPED = _metric(Counter, "fraudradar_api_first_seen_dropped_total",
                  "numbers dropped from the first-seen index by its size bound")


def _fp(pseudonym: str) -> int:
    """A 64-bit prefix of the pseudonym: collisions among a day's new numbers are negligible (and a
    collision can only make a number look new, a low-level reason)."""
    return int(pseudonym[:16], 16)


class FirstSeenIndex:
    """Pseudonym prefix → first-seen event time (ms), for the numbers first seen within ``horizon_ms``."""

    def __init__(self, horizon_ms: int = DAY_MS, max_items: int = 500_000) -> None:
        self.horizon_ms = horizon_ms
        self.max_items = max_items
        self._first: dict[int, int] = {}
        self._order: deque[int] = deque()     # arrival order: what ages out (or is cut) first
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._first)

    def add(self, number: str, first_seen_ms: int, now_ms: int) -> None:
        if now_ms - first_seen_ms > self.horizon_ms:
            return
        key = _fp(number)
        held = self._first.get(key)
        if held is not None:
            # a scorer replay or another partition owner told it again: the earliest counts
            self._first[key] = min(held, first_seen_ms)
            return
        self._first[key] = first_seen_ms
        self._order.append(key)
        while len(self._order) > self.max_items:
            self._first.pop(self._order.popleft(), None)
            self.dropped += 1

    def is_new(self, number: str, now_ms: int) -> bool:
        """Whether the network first saw ``number`` within the horizon before ``now_ms``."""
        first = self._first.get(_fp(number))
        return first is not None and now_ms - first <= self.horizon_ms

    def evict(self, now_ms: int) -> None:
        """Drop entries aged out of the horizon, oldest arrival first, up to the first young one."""
        while self._order:
            first = self._first.get(self._order[0])
            if first is not None and now_ms - first <= self.horizon_ms:
                return
            self._first.pop(self._order.popleft(), None)


class FirstSeenFeed(TopicReplay):
    poll_ms = 200

    def __init__(self, kafka_config: dict[str, Any], topic: str, index: FirstSeenIndex,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.index = index
        super().__init__("first-seen-feed", kafka_config, topic, loop)

    def _since_ms(self) -> int:
        return int(time.time() * 1000) - self.index.horizon_ms

    def _decode(self, batch: dict[TopicPartition, list[Any]]) -> list[FirstSeen]:
        out: list[FirstSeen] = []
        for tp, records in batch.items():
            for record in records:
                if record.value is None:
                    continue
                try:
                    rec = decode_first_seen(record.value)
                    _fp(rec.number)     # a pseudonym is 32 hex digits: anything else is no record of ours
                    out.append(rec)
                except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                    log.warning("skipping undecodable first-seen record %s[%d]@%d: %s", tp.topic, tp.partition,
                                record.offset, exc)
        return out

    def apply(self, records: list[FirstSeen]) -> None:
        """On the event loop: add the numbers, keep the gauge and the drop counter."""
        now_ms = int(time.time() * 1000)
        before = self.index.dropped
        for rec in records:
            self.index.add(rec.number, rec.first_seen_ms, now_ms)
        HELD.set(len(self.index))
        if self.index.dropped != before:
            DROPPED.inc(self.index.dropped - before)
