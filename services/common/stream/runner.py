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
from kafka.errors import KafkaError

from services.common.config import CommonSettings
from services.common.http import Health
from services.common.stream.commit import CommitPolicy, CommitStep, Committer
from services.common.stream.dlq import DlqGuard, DlqLimit, Record
from services.common.stream.exceptions import DlqLimitExceeded, RejoinStalled, StreamError
from services.common.stream.probes import LoopProbes, check_crc32c
from services.common.stream.rebalance import Listener, Polled, RebalanceWatch, RestartFromCommit
from services.common.stream.sink import OutputSink
from services.common.stream.transaction import TransactionAborted, Transactions, is_fenced, timed_out

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
    # each commit one Kafka transaction: outputs, commit steps and offsets (``transaction``);
    # implies restart_from_commit, and no separate membership check (KIP-447)
    exactly_once: bool = False
    # the id names this replica's producer across restarts (a restarted replica fences its
    # predecessor); default: service, instance id or host name, and the process id
    transactional_id: str | None = None
    # the broker aborts a transaction left open this long (a frozen or dead replica); must be
    # above the commit interval plus a commit's flush, and at most the broker's
    # transaction.max.timeout.ms (15 min by default). A dead replica's open transaction holds
    # back every read_committed reader of its partitions (the last stable offset) until then:
    # a restarted process with a new transactional id does not fence it
    transaction_timeout_ms: int = 20_000


def default_transactional_id(config: StreamConfig) -> str:
    """Stable across restarts when the replica has a stable name (static membership's instance
    id, e.g. the pod name): the restarted replica's ``init_transactions`` fences its predecessor."""
    import os
    import socket

    name = config.instance_id or f"{socket.gethostname()}-{os.getpid()}"
    return f"fraudradar-{config.service}-{name}"


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
            # always: inputs may be written in transactions (ingest's views, the scorer's links),
            # and an aborted one's records must never be handled
            isolation_level="read_committed",
            **config.consumer_overrides,
        )
        txn_cfg: dict[str, Any] = {}
        if config.exactly_once:
            txn_cfg = {"transactional_id": config.transactional_id or default_transactional_id(config),
                       "transaction_timeout_ms": config.transaction_timeout_ms, "enable_idempotence": True}

        def make_producer() -> KafkaProducer:
            return KafkaProducer(
                **kafka_cfg,
                client_id=f"fraudradar-{config.service}",
                acks="all",
                linger_ms=100,
                batch_size=256 * 1024,
                max_request_size=4 * 1024 * 1024,
                **txn_cfg,
                **config.producer_overrides,
            )

        # a transactional call waits at most the transaction timeout: by then the broker has
        # decided an unanswered transaction's outcome (``transaction.Transactions._call``)
        self.transactions = (Transactions(config.service, make_producer,
                                          call_timeout_s=config.transaction_timeout_ms / 1000)
                             if config.exactly_once else None)
        self.producer = self.transactions.producer if self.transactions is not None else make_producer()
        self.sink = OutputSink(self.producer, config.service, config.dlq_topic, self._guard)
        self.committer = Committer(self.consumer, self.sink, service=config.service, policy=config.commit,
                                   fence=config.fence_commits and not config.exactly_once,
                                   flush_timeout_s=config.flush_timeout_s, steps=commit_steps,
                                   transactions=self.transactions)
        self.restart = RestartFromCommit(self.consumer, self.committer.started)
        self.probes = LoopProbes(config.service, self.health, self.consumer)
        self.listener = Listener(self._revoked, self._assigned)
        # partitions were revoked while a transaction was open (set on the IO thread): it holds
        # outputs of records whose offsets were dropped, which their next owner processes again
        self._revoked_in_transaction = False

    # -- rebalance callbacks (IO thread, non-blocking) -----------------------------------------
    def _revoked(self, partitions: set[TopicPartition]) -> None:
        if partitions and self.transactions is not None and self.transactions.open:
            self._revoked_in_transaction = True
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
        if self.config.restart_from_commit or self.config.exactly_once:
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
        if self.transactions is not None:
            self.transactions.init()
        self.consumer.subscribe(cfg.topics, listener=self.listener)
        failed = False
        try:
            while not self.stop_event.is_set():
                self.probes.beat()
                polled = self.consumer.poll(timeout_ms=cfg.poll_timeout_ms, max_records=cfg.max_poll_records)
                if self._revoked_in_transaction:
                    self._abort_after_revoke()
                if self.restart.waiting:
                    polled = self.restart.apply(polled, self._assignment)
                try:
                    if polled:
                        self._handle(polled)
                    elif self._assignment:
                        self.probes.caught_up()
                    self.committer.maybe_commit(force=False)
                except TransactionAborted as exc:
                    self._reset_to_committed(exc)
                stalled = self._rebalance.stalled_for()
                if stalled is not None:
                    log.error("group rejoin stalled: partitions revoked and none assigned since; exiting",
                              extra={"seconds": round(stalled, 1), "group": cfg.group_id})
                    raise RejoinStalled(f"no assignment {stalled:.0f}s after a revoke (group {cfg.group_id})")
        except BaseException as exc:
            failed = True
            if isinstance(exc, DlqLimitExceeded) and self.transactions is not None:
                self._abort_keeping_dead_letters()
            raise
        finally:
            try:
                if failed and self.transactions is not None:
                    if self.transactions.open:     # nothing of a failed batch may commit
                        self.transactions.failed(StreamError("stopping after a failure"))
                else:
                    self.sink.flush_and_check(cfg.flush_timeout_s)
                    self.committer.maybe_commit(force=True)
            except StreamError:
                log.exception("final flush failed; offsets not committed")
            self.consumer.close(autocommit=False)
            producer = self.transactions.producer if self.transactions is not None else self.producer
            producer.close(timeout=cfg.flush_timeout_s)
            log.info("stopped", extra={"service": cfg.service})

    def _abort_keeping_dead_letters(self) -> None:
        """The DLQ limit stopped the service mid-batch: the open transaction is aborted (no
        offsets, no outputs), and the failing batch's dead letters are committed again on their
        own, so the DLQ shows what tripped the limit. Their offsets stay uncommitted: a fixed
        deploy processes those records again (a record still invalid is dead-lettered twice,
        with the same source partition and offset headers)."""
        txn = self.transactions
        assert txn is not None
        letters = list(self.sink.batch_dead_letters)
        if txn.open:
            txn.failed(StreamError("stopping: DLQ limit exceeded"))
        if not letters:
            return
        try:
            txn.begin()
            for topic, key, value, headers in letters:
                txn.producer.send(topic, key=key, value=value, headers=headers)
            txn.commit()
            txn.committed()
        except Exception as exc:          # stopping either way; the records come again at restart
            log.warning("the tripping batch's dead letters could not be written", extra={"error": type(exc).__name__})
            if txn.open:
                txn.failed(exc)

    def _abort_after_revoke(self) -> None:
        """Partitions were revoked while a transaction was open: it holds the outputs (and links)
        of records whose offsets the revoke dropped, so their next owner would write them again,
        and the records the kept partitions processed since the last commit restart from it. The
        transaction is aborted before anything else is sent (a rebalance costs at most one
        commit interval of work and a restore of the kept partitions)."""
        self._revoked_in_transaction = False
        assert self.transactions is not None
        if self.transactions.open:
            self._reset_to_committed(self.transactions.failed(StreamError("partitions revoked during the transaction")))

    def _reset_to_committed(self, exc: TransactionAborted) -> None:
        """A transaction did not commit: what the processor holds beyond the last commit is gone
        from the topics, so every owned partition is dropped and restarts from its committed
        offset (a ``read_committed`` fetch waits for a pending transaction's offsets)."""
        assert self.transactions is not None
        self.producer = self.transactions.producer
        self.sink.use(self.producer)
        owned = set(self._assignment)
        log.warning("transaction not committed; partitions restart from their committed offsets",
                    extra={"error": str(exc), "fenced": exc.fenced,
                           "partitions": sorted(f"{t.topic}[{t.partition}]" for t in owned)})
        for tp in owned:
            self.committer.forget(tp)
        self.processor.on_revoked(owned)
        self.processor.on_assigned(owned)
        aborted = getattr(self.processor, "on_aborted", None)   # a stateful processor drops its state
        if aborted is not None:
            aborted(owned)
        self.restart.waiting |= owned

    def _handle(self, polled: Polled) -> None:
        self.sink.batch_dead_letters.clear()
        if self.transactions is not None:
            self.transactions.begin()
        started = self.probes.polled(polled)
        records: list[Any] = []
        for recs in polled.values():
            records.extend(recs)
        try:
            self.processor.process(records, self.sink)            # 1. process
            self.sink.flush_and_check(self.config.flush_timeout_s)  # 2. flush + check futures
        except (KafkaError, StreamError) as exc:
            # the broker aborted the open transaction (left open past its timeout: the replica
            # was frozen or starved while processing) and fenced the producer, or the outputs
            # were not acknowledged in time (a broker restart; the producer may have lost its
            # AddPartitionsToTxn, see ``transaction``): abort, and redo from the commit
            if self.transactions is not None and (is_fenced(exc) or timed_out(exc)):
                raise self.transactions.failed(exc) from exc
            raise
        for tp, recs in polled.items():
            if tp in self._assignment or not self._assignment:
                self.committer.processed(tp, recs[0].offset, recs[-1].offset)
        self.probes.handled(polled, started)
