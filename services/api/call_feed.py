"""Materialises ``fraudradar.calls`` into the API's live call state (``call_state.CallStateStore``).

Every replica reads every partition (no consumer group), like the risk materialiser, on its own
thread and consumer, so a burst of call signalling never queues behind a risk backlog (and the
other way round). At start (a restart too) it seeks each partition to the first record of the
last ``lookback_s`` (``offsets_for_times``), replays them into an empty store and counts as
caught up at the end offsets taken then: the call state is rebuilt from Kafka, never kept on
disk. Each polled batch is handed to the event loop and applied there (one batch in flight);
the poll wait is short (``CallFeed.poll_ms``) because a ``started`` step must reach a check within a
second. The delay from ingest to applied is the ``fraudradar_api_call_state_delay_seconds``
histogram (ingest's wall clock to this replica's, both NTP-synchronised).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from kafka import TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from services.api.call_state import CallStateStore, LiveCall
from services.api.kafka_io import TopicReplay
from services.api.metrics import _metric
from services.common.call_records import CallAnnouncement, CallState, decode_call_record

log = logging.getLogger("fraudradar.api.calls")

DELAY = _metric(
    Histogram,
    "fraudradar_api_call_state_delay_seconds",
    "ingest of a call-state step to its application in this replica's call state",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
STEPS = _metric(Counter, "fraudradar_api_call_state_steps_total",
                "call-state steps applied", ("state",))
TRACKED = _metric(Gauge, "fraudradar_api_call_state_subscribers",
                  "subscribers with live or recent calls in this replica's call state")
DROPPED = _metric(Counter, "fraudradar_api_call_state_dropped_total",
                  "subscribers dropped from the call state by its size bound")


class CallFeed(TopicReplay):
    poll_ms = 50

    def __init__(self, kafka_config: dict[str, Any], topic: str, store: CallStateStore, lookback_s: float,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self._lookback_s = lookback_s
        super().__init__("call-feed", kafka_config, topic, loop)
        self._steps = {state: STEPS.labels(state) for state in ("started", "answered", "ended")}
        # told of each call's first step applied live (partition, offset, step, call): the push
        self.on_new_call: Callable[[int, int, CallState, LiveCall], None] | None = None

    def _since_ms(self) -> int:
        return int((time.time() - self._lookback_s) * 1000)

    def _decode(self, batch: dict[TopicPartition, list[Any]]) -> list[tuple[int, int, CallState | CallAnnouncement]]:
        out: list[tuple[int, int, CallState | CallAnnouncement]] = []
        for tp, records in batch.items():
            for record in records:
                if record.value is None:
                    continue
                try:
                    out.append((tp.partition, record.offset, decode_call_record(record.value)))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.warning("skipping undecodable call state %s[%d]@%d: %s", tp.topic, tp.partition,
                                record.offset, exc)
        return out

    def apply(self, records: list[tuple[int, int, CallState | CallAnnouncement]]) -> None:
        """On the event loop: apply the steps and announcements, observe the steps' delay, keep the gauges."""
        now_ms = int(time.time() * 1000)
        live = self.ready.is_set()
        before = self.store.dropped
        for partition, offset, rec in records:
            if isinstance(rec, CallAnnouncement):
                self.store.announcements.add(rec.bank, rec.subscriber, rec.calling, rec.expires_ms)
                continue
            call = self.store.apply(rec)
            if call is not None and call.first_offset < 0:
                call.first_offset = offset
                if live and self.on_new_call is not None:   # replayed history is never pushed
                    self.on_new_call(partition, offset, rec, call)
            self._steps[rec.state].inc()
            if live:   # replayed history at start is not a delay of the live path
                DELAY.observe(max(0.0, (now_ms - rec.ingested_ms) / 1000))
        TRACKED.set(len(self.store))
        if self.store.dropped != before:
            DROPPED.inc(self.store.dropped - before)
