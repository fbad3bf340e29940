"""The at-least-once consumer loop every streaming service runs, composed of its parts.

A service supplies a ``BatchProcessor``: it turns a polled batch into outputs through an
``OutputSink`` (``send`` for results, ``dead_letter`` for poison input, ``dlq``). The runner
owns the delivery guarantees; the commit path is, in order:

1. process the batch (the processor sends outputs and dead letters through the sink);
2. flush the producer and check every future (``sink``): a failed delivery stops the service
   *without* committing, so the batch is redelivered to whoever owns the partition next;
3. commit the next offsets of what was processed (``commit``: at most once per
   ``CommitPolicy.interval_s``, and always before shutdown). A stateful service
   (``fence_commits``) first proves to the broker that it is still a member of the group's
   current generation (``Committer.membership_problem``): a replica that lost its partitions
   while it was stalled or frozen (a zombie) then writes neither its state nor offsets. Its
   ``CommitStep`` (the scorer's changelog) is written and flushed right before the offsets;
4. poll again. With ``restart_from_commit`` every partition a rebalance assigns restarts from
   the group's committed offset (``rebalance.RestartFromCommit``). Rebalances happen only
   inside ``poll`` (kafka-python 3.x runs listeners on its IO thread while this thread is
   blocked in ``poll``), so listeners only drop pending offsets of revoked partitions and tell
   the processor; they never call blocking consumer APIs.

Blocking: ``run`` until ``stop`` is set (SIGTERM/SIGINT via ``install_signal_handlers``).
Raises: ``DlqLimitExceeded`` when poison input crosses the limit; ``DeliveryFailed`` when the
broker does not acknowledge outputs; ``RejoinStalled`` when the group never hands partitions back.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.common.config import CommonSettings
from services.common.http import Health
from services.common.stream.commit import CommitPolicy, CommitStep, Committer
from services.common.stream.dlq import DlqGuard, DlqLimit, Record
from services.common.stream.exceptions import RejoinStalled, StreamError
from services.common.stream.probes import LoopProbes, check_crc32c
from services.common.stream.rebalance import Listener, Polled, RebalanceWatch, RestartFromCommit
from services.common.stream.sink import OutputSink

log = logging.getLogger("fraudradar.stream")


class BatchProcessor(Protocol):
    def process(self, records: list[Record], sink: OutputSink) -> None:
        """Handle a batch in offset order per partition; send every output through ``sink``."""

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions added (called on the consumer's IO thread; must not block)."""

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions taken away or lost (IO thread; drop state, do not block)."""


@dataclass
class StreamConfig:
    service: str
    group_id: str
    topics: list[str]
    dlq_topic: str
    max_poll_records: int = 2000
    poll_timeout_ms: int = 200
    commit: CommitPolicy = field(default_factory=CommitPolicy)
    dlq_limit: DlqLimit = field(default_factory=DlqLimit)
    flush_timeout_s: float = 30.0
    instance_id: str | None = None      # static membership (KIP-345), e.g. the pod name
    # a revoke not followed by an assignment for this long is a stuck rejoin (see RejoinStalled);
    # a join may legitimately wait for a dead member's session and a peer's restore
    rejoin_stall_s: float = 150.0
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    producer_overrides: dict[str, Any] = field(default_factory=dict)
    # prove membership to the broker before the commit steps (one extra OffsetCommit per commit)
    fence_commits: bool = False
    # after every rebalance, restart each assigned partition from the group's committed offset
    # (see ``rebalance.RestartFromCommit``)
    restart_from_commit: bool = False


class StreamRunner:
    """The loop: poll, process, flush and check, commit; its parts are composed, not inherited."""

    def __init__(self, settings: CommonSettings, config: StreamConfig, processor: BatchProcessor,
                 health: Health | None = None, commit_steps: Sequence[CommitStep] = ()) -> None:
        check_crc32c()
        self.settings = settings
        self.config = config
        self.processor = processor
        self.health = health or Health()
        self.stop_event = threading.Event()
        self._assignment: set[TopicPartition] = set()
        self._guard = DlqGuard(config.dlq_limit)
        self._rebalance = RebalanceWatch(config.rejoin_stall_s)
        kafka_cfg = settings.kafka_config()
        self.consumer = KafkaConsumer(
            **kafka_cfg,
            group_id=config.group_id,
            client_id=f"fraudradar-{config.service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=config.max_poll_records,
            group_instance_id=config.instance_id,
            fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **config.consumer_overrides,
        )
        self.producer = KafkaProducer(
            **kafka_cfg,
            client_id=f"fraudradar-{config.service}",
            acks="all",
            linger_ms=100,
            batch_size=256 * 1024,
            max_request_size=4 * 1024 * 1024,
            **config.producer_overrides,
        )
        self.sink = OutputSink(self.producer, config.service, config.dlq_topic, self._guard)
        self.committer = Committer(self.consumer, self.sink, service=config.service, policy=config.commit,
                                   fence=config.fence_commits, flush_timeout_s=config.flush_timeout_s,
                                   steps=commit_steps)
        self.restart = RestartFromCommit(self.consumer)
        self.probes = LoopProbes(config.service, self.health, self.consumer)
        self.listener = Listener(self._revoked, self._assigned)

    # -- rebalance callbacks (IO thread, non-blocking) -----------------------------------------
    def _revoked(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self.committer.forget(tp)
        self._assignment -= partitions
        self.restart.waiting -= partitions
        self._rebalance.revoked()
        self._guard.forget(partitions)
        self.processor.on_revoked(partitions)
        log.info("partitions revoked", extra={"partitions": sorted(f"{t.topic}[{t.partition}]" for t in partitions)})

    def _assigned(self, partitions: set[TopicPartition]) -> None:
        self._assignment |= partitions
        if self.config.restart_from_commit:
            self.restart.waiting |= partitions
        self._rebalance.assigned()
        self.processor.on_assigned(partitions)
        log.info("partitions assigned", extra={"partitions": sorted(f"{t.topic}[{t.partition}]" for t in partitions)})

    # -- the loop --------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def _stop(signum: int, _frame: object) -> None:
            log.info("signal received, finishing the batch", extra={"signal": signum})
            self.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def run(self) -> None:
        cfg = self.config
        # Fetch the topics' metadata before joining: a group leader that computes the first
        # assignment without it assigns nothing, and kafka-python 3.0.12 can then stall in the
        # rejoin the metadata change triggers (seen with two replicas and with static membership).
        for topic in cfg.topics:
            if not self.consumer.partitions_for_topic(topic):
                raise StreamError(f"topic {topic} does not exist (run `fraudradar topics ensure`)")
        self.consumer.subscribe(cfg.topics, listener=self.listener)
        try:
            while not self.stop_event.is_set():
                self.probes.beat()
                polled = self.consumer.poll(timeout_ms=cfg.poll_timeout_ms, max_records=cfg.max_poll_records)
                if self.restart.waiting:
                    polled = self.restart.apply(polled, self._assignment)
                if polled:
                    self._handle(polled)
                elif self._assignment:
                    self.probes.caught_up()
                self.committer.maybe_commit(force=False)
                stalled = self._rebalance.stalled_for()
                if stalled is not None:
                    log.error("group rejoin stalled: partitions revoked and none assigned since; exiting",
                              extra={"seconds": round(stalled, 1), "group": cfg.group_id})
                    raise RejoinStalled(f"no assignment {stalled:.0f}s after a revoke (group {cfg.group_id})")
        finally:
            try:
                self.sink.flush_and_check(cfg.flush_timeout_s)
                self.committer.maybe_commit(force=True)
            except StreamError:
                log.exception("final flush failed; offsets not committed")
            self.consumer.close(autocommit=False)
            self.producer.close(timeout=cfg.flush_timeout_s)
            log.info("stopped", extra={"service": cfg.service})

    def _handle(self, polled: Polled) -> None:
        started = self.probes.polled(polled)
        records: list[Any] = []
        for recs in polled.values():
            records.extend(recs)
        self.processor.process(records, self.sink)            # 1. process
        self.sink.flush_and_check(self.config.flush_timeout_s)  # 2. flush + check futures
        for tp, recs in polled.items():
            if tp in self._assignment or not self._assignment:
                self.committer.processed(tp, recs[0].offset, recs[-1].offset)
        self.probes.handled(polled, started)
