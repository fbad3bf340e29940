"""The at-least-once consumer loop every streaming service runs.

A service supplies a ``BatchProcessor``: it turns a polled batch into outputs through an
``OutputSink`` (``send`` for results, ``dead_letter`` for poison input). The runner owns the
delivery guarantees; the commit path is, in order:

1. process the batch (the processor sends outputs and dead letters through the sink);
2. flush the producer and check every future: a failed delivery stops the service *without*
   committing, so the batch is redelivered to whoever owns the partition next;
3. commit the next offsets of what was processed (``CommitPolicy``: at most once per
   ``interval_s``, and always before shutdown). A stateful service (``fence_commits``) first
   proves to the broker that it is still a member of the group's current generation, by
   committing again offsets it already holds (see ``_membership_problem``): a replica that lost its
   partitions while it was stalled or frozen (a zombie) then writes neither its state changelog
   nor offsets;
4. poll again. With ``restart_from_commit`` every partition a rebalance assigns restarts from
   the group's committed offset (kafka-python 3 would keep the position of a partition this
   member keeps). Rebalances happen only inside ``poll`` (kafka-python 3.x runs listeners on its
   IO thread while this thread is blocked in ``poll``), so listeners only drop pending offsets
   of revoked partitions and tell the processor; they never call blocking consumer APIs.

Blocking: ``run`` until ``stop`` is set (SIGTERM/SIGINT via ``install_signal_handlers``).
Raises: ``DlqLimitExceeded`` when poison input crosses the limit; ``DeliveryFailed`` when the
broker does not acknowledge outputs.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, FencedInstanceIdError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from services.common import metrics
from services.common.config import CommonSettings
from services.common.exceptions import FraudradarError
from services.common.http import Health

log = logging.getLogger("fraudradar.stream")


class StreamError(FraudradarError):
    """The stream loop had to stop."""


class DlqLimitExceeded(StreamError):
    """Too much poison input: stop rather than dead-letter everything after a bad deploy."""


class DeliveryFailed(StreamError):
    """The broker did not acknowledge outputs; offsets were not committed."""


class Crc32cMissing(StreamError):
    """kafka-python would fall back to pure-Python CRC32C, about 10x slower."""


def check_crc32c() -> None:
    """Fail fast if the ``crc32c`` C extension is missing (kafka-python decodes 10x slower)."""
    try:
        import crc32c  # noqa: F401
    except ImportError as exc:
        raise Crc32cMissing("the 'crc32c' package is not installed: pip install crc32c") from exc


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


@dataclass
class CommitPolicy:
    """Commit at most once per ``interval_s`` (0 = after every batch)."""

    interval_s: float = 1.0
    _last: float = field(default=0.0, repr=False)

    def due(self, now: float) -> bool:
        return now - self._last >= self.interval_s

    def committed(self, now: float) -> None:
        self._last = now


class Record(Protocol):
    """The parts of a kafka-python ``ConsumerRecord`` that processors use."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    timestamp: int


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
        headers = [(k, v) for k, v in (record.headers or []) if not k.startswith("fraudradar.")]
        headers += [
            ("reason", reason.encode()),
            ("fraudradar.detail", detail[:500].encode("utf-8", "replace")),
            ("fraudradar.source_topic", record.topic.encode()),
            ("fraudradar.source_partition", str(record.partition).encode()),
            ("fraudradar.source_offset", str(record.offset).encode()),
            ("fraudradar.service", self._service.encode()),
            ("fraudradar.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        self._futures.append(self._producer.send(self._dlq_topic, key=record.key, value=record.value,
                                                 headers=headers))
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


class BatchProcessor(Protocol):
    def process(self, records: list[Record], sink: OutputSink) -> None:
        """Handle a batch in offset order per partition; send every output through ``sink``."""

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions added (called on the consumer's IO thread; must not block)."""

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions taken away or lost (IO thread; drop state, do not block)."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: StreamRunner) -> None:
        self.runner = runner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.runner._revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.runner._assigned(set(assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        self.runner._revoked(set(lost))


class RejoinStalled(StreamError):
    """The group took its partitions away and never handed any back (kafka-python 3.0.x can stall
    in a rejoin); the service exits so its supervisor (Kubernetes, the reliability rig) restarts it."""


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
    # prove membership to the broker before ``before_commit`` (one extra OffsetCommit per commit)
    fence_commits: bool = False
    # after every rebalance, restart each assigned partition from the group's committed offset
    # (see ``_restart_from_commit``)
    restart_from_commit: bool = False


class StreamRunner:
    def __init__(self, settings: CommonSettings, config: StreamConfig, processor: BatchProcessor,
                 health: Health | None = None) -> None:
        check_crc32c()
        self.settings = settings
        self.config = config
        self.processor = processor
        self.health = health or Health()
        self.stop_event = threading.Event()
        self._pending: dict[TopicPartition, int] = {}
        # per owned partition, an offset that is safe to commit again: the last one committed,
        # or where consumption of the partition began (the committed offset or the reset point)
        self._base: dict[TopicPartition, int] = {}
        self._assignment: set[TopicPartition] = set()
        self._to_restart: set[TopicPartition] = set()   # assigned since the last poll (restart_from_commit)
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

    # -- rebalance callbacks (IO thread, non-blocking) -----------------------------------------
    def _revoked(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._pending.pop(tp, None)
            self._base.pop(tp, None)
        self._assignment -= partitions
        self._to_restart -= partitions
        self._rebalance.revoked()
        self._guard.forget(partitions)
        self.processor.on_revoked(partitions)
        log.info("partitions revoked", extra={"partitions": sorted(f"{t.topic}[{t.partition}]" for t in partitions)})

    def _assigned(self, partitions: set[TopicPartition]) -> None:
        self._assignment |= partitions
        if self.config.restart_from_commit:
            self._to_restart |= partitions
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
        self.consumer.subscribe(cfg.topics, listener=_Listener(self))
        service = cfg.service
        try:
            while not self.stop_event.is_set():
                self.health.beat()
                polled = self.consumer.poll(timeout_ms=cfg.poll_timeout_ms, max_records=cfg.max_poll_records)
                if self._to_restart:
                    polled = self._restart_from_commit(polled)
                if polled:
                    self._handle(polled)
                elif self._assignment:
                    self.health.set_ready(True, "caught up")
                self._maybe_commit(force=False)
                stalled = self._rebalance.stalled_for()
                if stalled is not None:
                    log.error("group rejoin stalled: partitions revoked and none assigned since; exiting",
                              extra={"seconds": round(stalled, 1), "group": cfg.group_id})
                    raise RejoinStalled(f"no assignment {stalled:.0f}s after a revoke (group {cfg.group_id})")
        finally:
            try:
                self.sink.flush_and_check(cfg.flush_timeout_s)
                self._maybe_commit(force=True)
            except StreamError:
                log.exception("final flush failed; offsets not committed")
            self.consumer.close(autocommit=False)
            self.producer.close(timeout=cfg.flush_timeout_s)
            log.info("stopped", extra={"service": service})

    def _handle(self, polled: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        records: list[Any] = []
        for tp, recs in polled.items():
            records.extend(recs)
            metrics.CONSUMER_RECORDS.labels(self.config.service, tp.topic).inc(len(recs))
        self.processor.process(records, self.sink)            # 1. process
        self.sink.flush_and_check(self.config.flush_timeout_s)  # 2. flush + check futures
        for tp, recs in polled.items():
            if tp in self._assignment or not self._assignment:
                self._pending[tp] = recs[-1].offset + 1
                self._base.setdefault(tp, recs[0].offset)
            high = self.consumer.highwater(tp)
            if high is not None:
                metrics.CONSUMER_LAG.labels(self.config.service, tp.topic, str(tp.partition)).set(
                    max(0, high - (recs[-1].offset + 1)))
        metrics.BATCH_SECONDS.labels(self.config.service).observe(time.perf_counter() - started)

    def _restart_from_commit(self, polled: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, list[Any]]:
        """Seek every partition assigned by the last rebalance to the group's committed offset
        (the log's beginning when none: ``auto_offset_reset``) and drop what was polled from
        elsewhere; return the rest of ``polled``.

        kafka-python 3.0.12 keeps the fetch position of a partition a member keeps through an
        (eager) rebalance (``SubscriptionState.assign_from_subscribed``; measured: 10 records
        processed and not committed were not redelivered), while this runner drops the offsets
        it had not committed for every revoked partition. So without this, the records between
        the last commit and the position are never committed until newer ones arrive, and a
        stateful service that restores such a partition from its changelog (which holds what
        was committed) never sees them: its state misses them. With it, every rebalance
        restarts each partition from its last commit, as Kafka's contract reads.
        """
        targets = self._to_restart & self._assignment
        self._to_restart = set()
        kept: dict[TopicPartition, list[Any]] = {}
        for tp in targets:
            try:
                committed = self.consumer.committed(tp)
                start = committed if committed is not None else self.consumer.beginning_offsets([tp])[tp]
            except Exception as exc:              # coordinator moving: skip its records, try again
                log.warning("committed offset unavailable; the partition waits",
                            extra={"partition": f"{tp.topic}[{tp.partition}]", "error": type(exc).__name__})
                self._to_restart.add(tp)
                continue
            recs = polled.get(tp)
            if recs and recs[0].offset == start:
                kept[tp] = recs                   # fetched from there already (a new partition)
            else:
                self.consumer.seek(tp, start)
        kept.update((tp, recs) for tp, recs in polled.items() if tp not in targets)
        return kept

    def before_commit(self) -> None:
        """Hook: runs right before offsets are committed (after the batch outputs were flushed).

        A stateful service writes its changelog here and flushes it (``self.sink``), so the
        changelog is never behind the offsets being committed. Raising skips the commit.
        """

    def _maybe_commit(self, force: bool) -> None:
        now = time.monotonic()
        if not self._pending or not (force or self.config.commit.due(now)):
            return
        problem = self._membership_problem() if self.config.fence_commits else None
        if problem is not None:
            pending = sorted(f"{t.topic}[{t.partition}]" for t in self._pending)
            if problem == "lost":
                # a zombie: the partitions' new owner restored from the changelog as it stood and
                # replays the batch; writing now would interleave two writers' state on it
                metrics.COMMITS_FENCED.labels(self.config.service).inc()
                log.warning("not a member of the group's current generation: state and offsets not written; "
                            "the partitions' owner replays the batch", extra={"partitions": pending})
            else:
                log.warning("commit postponed: state and offsets not written; the batch is redelivered if "
                            "its partitions move", extra={"reason": problem, "partitions": pending})
            self._pending.clear()
            return
        self.before_commit()
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in self._pending.items()}
        try:
            self.consumer.commit(offsets)                      # 3. commit
        except Exception as exc:  # a rebalance raced us: the new owner replays (idempotent outputs)
            log.warning("commit failed; the batch will be redelivered", extra={"error": type(exc).__name__})
            self._pending.clear()
            return
        self._base.update(self._pending)
        self._pending.clear()
        self.config.commit.committed(now)
        metrics.CONSUMER_COMMITS.labels(self.config.service).inc()
        metrics.LAST_COMMIT.labels(self.config.service).set(time.time())

    def _membership_problem(self) -> str | None:
        """None when the broker still counts this consumer a member of the group's current
        generation; else why not: ``lost`` (removed or fenced), ``rebalancing``, ``unreachable``.

        The local view is not enough: a process frozen longer than the session timeout (a paused
        pod, a VM migration, CPU throttling) resumes believing it owns its partitions until its
        next heartbeat comes back, and another replica may have restored them meanwhile. So the
        offsets in ``_base`` (already committed, or where consumption began: committing them
        again changes nothing) are committed with this member's generation; the broker refuses
        that from a member it removed or fenced. Once it accepts, the partitions cannot move
        before this member misses a whole session timeout or a rebalance timeout, far longer
        than writing and flushing one changelog.
        """
        if self.consumer.group_metadata().generation_id < 0:
            return "lost"                         # left the group (e.g. max.poll.interval passed)
        proof = {tp: OffsetAndMetadata(self._base[tp], "", -1) for tp in self._pending if tp in self._base}
        try:
            self.consumer.commit(proof)
        except Exception as exc:
            cause = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
            log.info("membership check failed", extra={"error": f"{type(cause).__name__}: {cause}"[:300]})
            if isinstance(exc, FencedInstanceIdError) or self.consumer.group_metadata().generation_id < 0:
                return "lost"                     # kafka-python resets the generation on these answers
            if isinstance(cause, RebalanceInProgressError):
                return "rebalancing"
            return "lost" if isinstance(exc, CommitFailedError) else "unreachable"
        return None


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
