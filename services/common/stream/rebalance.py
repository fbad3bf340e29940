"""Rebalances: the listener (IO thread, record only), the stuck-rejoin watch, and restarting
assigned partitions from the group's committed offsets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

log = logging.getLogger("fraudradar.stream")
Polled = dict[TopicPartition, list[Any]]


class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """kafka-python's listener, handing sets of partitions to two callbacks."""

    def __init__(self, revoked: Callable[[set[TopicPartition]], None],
                 assigned: Callable[[set[TopicPartition]], None]) -> None:
        self._revoked = revoked
        self._assigned = assigned

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._assigned(set(assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        self._revoked(set(lost))


class RebalanceWatch:
    """Time since partitions were revoked without an assignment callback following.

    kafka-python calls ``on_partitions_assigned`` after every completed join, with an empty set
    when this member gets nothing (more replicas than partitions), so "revoked and not assigned
    again for longer than a rebalance can take" means the rejoin is stuck, not that we are idle.
    """

    def __init__(self, limit_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_s = limit_s
        self._clock = clock
        self._since: float | None = None

    def revoked(self) -> None:
        if self._since is None:
            self._since = self._clock()

    def assigned(self) -> None:
        self._since = None

    def stalled_for(self) -> float | None:
        """Seconds the rejoin has been stuck past the limit, else None."""
        if self._since is None:
            return None
        waited = self._clock() - self._since
        return waited if waited > self.limit_s else None


class RestartFromCommit:
    """Seek every partition a rebalance assigned to the group's committed offset (the log's
    beginning when none: ``auto_offset_reset``) and drop what was polled from elsewhere.

    kafka-python 3.0.12 keeps the fetch position of a partition a member keeps through an
    (eager) rebalance (``SubscriptionState.assign_from_subscribed``), while the loop drops the
    offsets it had not committed for every revoked partition. So without this, the records
    between the last commit and the position are never committed until newer ones arrive, and a
    stateful service that restores such a partition from its changelog (which holds what was
    committed) never sees them: its state misses them. With it, every rebalance restarts each
    partition from its last commit, as Kafka's contract reads.
    """

    def __init__(self, consumer: KafkaConsumer,
                 started: Callable[[TopicPartition, int], None] = lambda tp, offset: None) -> None:
        self.consumer = consumer
        self.started = started    # told where each partition (re)starts: an offset safe to commit again
        self.waiting: set[TopicPartition] = set()   # assigned since the last poll

    def apply(self, polled: Polled, assignment: set[TopicPartition]) -> Polled:
        """``polled`` without the records of partitions that were sought back."""
        targets = self.waiting & assignment
        self.waiting = set()
        kept: Polled = {}
        for tp in targets:
            try:
                committed = self.consumer.committed(tp, timeout_ms=5_000)   # unstable: retried next poll
                start = committed if committed is not None else self.consumer.beginning_offsets([tp])[tp]
            except Exception as exc:              # coordinator moving: skip its records, try again
                log.warning("committed offset unavailable; the partition waits",
                            extra={"partition": f"{tp.topic}[{tp.partition}]", "error": type(exc).__name__})
                self.waiting.add(tp)
                continue
            self.started(tp, start)
            recs = polled.get(tp)
            if recs and recs[0].offset == start:
                kept[tp] = recs                   # fetched from there already (a new partition)
            else:
                self.consumer.seek(tp, start)
        kept.update((tp, recs) for tp, recs in polled.items() if tp not in targets)
        return kept
