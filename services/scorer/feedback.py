"""Partner feedback for the scorer: every replica reads all of ``fraudradar.feedback`` (no group)
and hands each report to the local scorer owning the entity's partition.

A scorer's checkpoint records the feedback offset it has applied; a restored scorer behind the
feed's position has the feed moved back (``rewind``), never forward, so it sees its reports.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from services.common.records import decode_feedback
from services.common.stream import murmur2_partition
from services.scorer.restore import Owned

log = logging.getLogger("fraudradar.scorer")


class FeedbackFeed:
    """The feedback topic, polled every ``poll_s`` while this replica owns partitions."""

    def __init__(self, kafka_config: dict[str, Any], topic: str, *, poll_s: float) -> None:
        self.kafka_config, self.topic, self.poll_s = kafka_config, topic, poll_s
        self._consumer: Any = None
        self._next_poll = 0.0
        self.open_failures = 0      # connection attempts that failed (retried at the next poll)
        self.skipped = 0            # records that were not a feedback report (logged)

    def poll(self, owned: dict[int, Owned], n_partitions: int) -> None:
        """Apply the reports that arrived since the last poll (links and feedback are routed with
        the views' partitioner over ``n_partitions``)."""
        now = time.monotonic()
        if now < self._next_poll or not owned:
            return
        self._next_poll = now + self.poll_s
        if self._consumer is None and not self._open(owned):
            return
        for recs in self._consumer.poll(timeout_ms=0, max_records=5000).values():
            for rec in recs:
                try:
                    feedback = decode_feedback(rec.value)
                except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
                    self.skipped += 1
                    log.warning("feedback record not decodable, skipped",
                                extra={"offset": rec.offset, "error": type(exc).__name__})
                    continue
                target = owned.get(murmur2_partition(feedback.entity.encode(), n_partitions))
                if target is not None and rec.offset >= target.scorer.state.feedback_offset:
                    target.scorer.learn_feedback(feedback)
                    target.scorer.state.feedback_offset = rec.offset + 1

    def _open(self, owned: dict[int, Owned]) -> bool:
        """Connect to the feed. A broker that does not answer (restarting, or this process was
        frozen past its request timeout) is not fatal: the next poll tries again, and the scorer
        goes on scoring meanwhile (feedback only ever lowers or confirms a verdict later)."""
        consumer: Any = None
        try:
            consumer = KafkaConsumer(**self.kafka_config, group_id=None, enable_auto_commit=False,
                                     client_id="fraudradar-scorer-feedback", auto_offset_reset="earliest")
            parts = consumer.partitions_for_topic(self.topic) or {0}
            consumer.assign([TopicPartition(self.topic, p) for p in sorted(parts)])
        except KafkaError as exc:
            self.open_failures += 1
            log.warning("feedback feed not reachable, retried at the next poll",
                        extra={"error": type(exc).__name__, "retry_s": self.poll_s})
            if consumer is not None:
                consumer.close()
            return False
        self._consumer = consumer
        self.rewind(min(o.scorer.state.feedback_offset for o in owned.values()))
        return True

    def rewind(self, offset: int) -> None:
        """Move the feed back (never forward) so a scorer restored behind it sees its reports."""
        consumer = self._consumer
        if consumer is None:
            return                     # not reading yet: the first poll starts at the lowest offset
        for tp in consumer.assignment():
            if offset < consumer.position(tp):
                consumer.seek(tp, offset)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
