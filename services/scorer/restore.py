"""Restoring a partition's scorer from ``scorer-state[p]``, and telling whether a kept one is current.

Restore: the first record of a partition the service has no (valid) scorer for triggers a
synchronous replay of ``scorer-state[p]`` on the processing thread, before any of ``p``'s
records are processed (the consumer's IO thread keeps heartbeating). A scorer kept through a
rebalance stays valid when nobody else wrote ``scorer-state[p]`` since its own last write and
the group's committed offsets of partition ``p`` of all three input topics are at or behind
where the scorer stands (``current``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition

from services.common.pseudonym import Pseudonymizer
from services.common.stream import Record
from services.scorer import metrics
from services.scorer.exceptions import RestoreStalled
from services.scorer.partition import PartitionScorer
from services.scorer.policy import Policy

log = logging.getLogger("fraudradar.scorer")
T = TypeVar("T")


@dataclass(eq=False)
class Owned:
    """A partition this replica scores: its scorer and the service's bookkeeping about it."""

    scorer: PartitionScorer
    next_offsets: dict[str, int] = field(default_factory=dict)   # source topic -> next offset
    # the offset right after its last own write to its scorer-state partition (after a restore:
    # the end it restored up to); a data record at or after it was written by someone else
    changelog_end: int | None = None


@dataclass(eq=False)
class Restorer:
    """Reads ``scorer-state`` partitions back into scorers (its own consumer, no group)."""

    kafka_config: dict[str, Any]
    policy: Policy
    pseudonymizer: Pseudonymizer
    _: KW_ONLY
    seed: int
    state_topic: str
    input_topics: list[str]
    # the group's committed offsets (set by ``build``: the runner's consumer's ``committed``);
    # None until then, and a scorer kept through a rebalance is then always restored
    committed: Callable[[TopicPartition], int | None] | None = field(default=None, init=False)
    stable_wait_s: float = 15.0          # how long a restore waits for open transactions to end
    # a restore whose read position stands still this long (the changelog's leader unreachable, a
    # fetch never answered) raises ``RestoreStalled``: the process exits and is restarted
    restore_stall_s: float = 120.0
    progress_every_s: float = 10.0       # a restore longer than this logs where it stands
    _consumer: Any = field(default=None, init=False)
    _checker: Any = field(default=None, init=False)

    def current(self, owned: Owned, record: Record) -> bool:
        """Is ``owned`` still valid for its partition after a rebalance?

        Yes when no other replica wrote the partition's changelog since this scorer's last
        write (its end offset is where that write left it: two writers' delta sequences and
        snapshot generations must never interleave) and none committed progress on any of the
        partition's input topics past where this scorer stands: every committed offset is at or
        behind the scorer's next offset on that topic (or nothing was ever committed there).
        Records between the committed offset and the scorer's position are then replays of what
        it already applied — views are skipped by the per-entity source position, links are
        idempotent — and their outputs were flushed before. Comparing only the first record
        with the next offset would not do: the group restarts from its last commit, behind the
        scorer, and a replica that meanwhile processed and committed only another topic (say
        links) would go unnoticed.
        """
        if owned.changelog_end is None or self._written_since(record.partition, owned.changelog_end) is not False:
            return False                         # another writer (a replica that owned it) or unknown
        committed = self.committed_offsets(record.partition)
        if committed is None:
            return False                         # unknown: restore (always correct)
        for topic, offset in committed.items():
            position = owned.next_offsets.get(topic)
            if offset is not None and (position is None or offset > position):
                return False
        position = owned.next_offsets.get(record.topic)
        return position is None or record.offset <= position

    def _written_since(self, partition: int, offset: int) -> bool | None:
        """Does ``scorer-state[partition]`` hold a data record at or after ``offset``? (None: unknown.)

        Read uncommitted, up to the high watermark: a committed transaction's records are
        visible to read-committed readers only once the broker has written its commit marker
        into the partition, which happens after ``commit_transaction`` returns — the last
        stable offset can still be where this scorer's own write left it although another
        replica's commit already succeeded. Any data record counts, committed, open or aborted
        (restoring is always correct); transaction markers (control records) are not returned
        to the client, so this scorer's own commit marker does not count."""
        return _or_unknown(lambda: self._any_record_since(partition, offset), "changelog end", partition)

    def _any_record_since(self, partition: int, offset: int) -> bool:
        client = self._check_client()
        tp = TopicPartition(self.state_topic, partition)
        client.assign([tp])
        end = int(client.end_offsets([tp])[tp])
        if end <= offset:
            return False
        client.seek(tp, offset)
        deadline = time.monotonic() + 10.0
        while client.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog partition {partition} not read up to {end}")
            if any(client.poll(timeout_ms=500, max_records=1).values()):
                return True
        return False

    def committed_offsets(self, partition: int) -> dict[str, int | None] | None:
        """The group's committed offset of ``partition`` of each input topic (None: never
        committed); None when they cannot be read (no runner, coordinator unavailable)."""
        committed = self.committed
        if committed is None:
            return None
        return _or_unknown(lambda: {topic: committed(TopicPartition(topic, partition)) for topic in self.input_topics},
                           "committed offsets", partition)

    def restore(self, partition: int) -> Owned:
        """Replay ``scorer-state[partition]`` into a fresh scorer (blocking, this thread)."""
        started = time.perf_counter()
        metrics.RESTORING.set(1)
        owned = Owned(PartitionScorer(self.policy, self.pseudonymizer, seed=self.seed,
                                      partition=partition, journal=True))
        state = owned.scorer.state
        consumer = self._restore_client()
        tp = TopicPartition(self.state_topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = self._stable_end(tp)
        n_records = 0
        position, moved_at = -1, time.monotonic()
        reported = moved_at
        while True:
            now = time.monotonic()
            read_to = consumer.position(tp, timeout_ms=5_000)
            if read_to is not None and read_to >= end:
                break
            if read_to is not None and read_to != position:
                position, moved_at = read_to, now
            elif now - moved_at > self.restore_stall_s:
                log.error("partition state restore made no progress; exiting", extra={
                    "partition": partition, "position": position, "end": end, "records": n_records,
                    "seconds": round(now - moved_at, 1)})
                raise RestoreStalled(f"restore of {self.state_topic}[{partition}] stood at {position} of {end} "
                                     f"for {now - moved_at:.0f} s")
            if now - reported >= self.progress_every_s:
                reported = now
                log.info("restoring partition state", extra={
                    "partition": partition, "position": position, "end": end, "records": n_records,
                    "seconds": round(time.perf_counter() - started, 1)})
            for recs in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                for rec in recs:
                    if rec.offset >= end:
                        break
                    n_records += 1
                    state.apply_changelog(rec.key, rec.value)
        entries = state.finish_restore()
        owned.changelog_end = end
        models = state.restore_models()
        metrics.MODEL_RESTORES.labels(models.outcome).inc()
        if state.discarded_records:
            metrics.RESTORE_DISCARDED.inc(state.discarded_records)
            log.warning("a commit cut short by a crash was dropped and is undone at the next commit",
                        extra={"partition": partition, "records": state.discarded_records})
        if models.checkpoint == "other_version":
            log.info("model checkpoint of another model version ignored", extra={"partition": partition})
        if models.error is not None:
            log.error("model checkpoint or journal rejected; models continue from what verified",
                      extra={"partition": partition, "checkpoint": models.checkpoint, "error": models.error})
        consumer.unsubscribe()
        # where this scorer starts on each input topic: the group's committed offsets (the
        # restored state reflects at least them; replays of later records are no-ops)
        for topic, offset in (self.committed_offsets(partition) or {}).items():
            if offset is not None:
                owned.next_offsets[topic] = offset
        elapsed = time.perf_counter() - started
        metrics.RESTORE_SECONDS.set(elapsed)
        metrics.RESTORING.set(0)
        log.info("partition state restored", extra={
            "partition": partition, "records": n_records, "entries": entries,
            "entities": sum(state.entities().values()), "models": models.checkpoint,
            "journal_entries": models.entries, "seconds": round(elapsed, 3)})
        return owned

    def _stable_end(self, tp: TopicPartition) -> int:
        """Where the restore reads up to: the last stable offset, once it has caught up with the
        high watermark seen first (bounded wait). A transaction another replica just committed
        becomes readable only when the broker has written its marker, shortly after the commit
        returned; reading up to an earlier stable offset would miss that commit while the group's
        committed offsets already include it. A transaction still open after the wait (a frozen
        writer's) is left out: the broker aborts it."""
        high = int(self._check_client().end_offsets([tp])[tp])
        deadline = time.monotonic() + self.stable_wait_s
        while True:
            stable = int(self._restore_client().end_offsets([tp])[tp])
            if stable >= high or time.monotonic() >= deadline:
                return stable
            time.sleep(0.05)

    def _restore_client(self) -> Any:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                **self.kafka_config, group_id=None, enable_auto_commit=False,
                isolation_level="read_committed",   # never an aborted transaction's state (a zombie's)
                client_id="fraudradar-scorer-restore", max_poll_records=10_000,
                fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024)
        return self._consumer

    def _check_client(self) -> Any:
        if self._checker is None:
            self._checker = KafkaConsumer(
                **self.kafka_config, group_id=None, enable_auto_commit=False,
                isolation_level="read_uncommitted",   # sees other writers' records before their markers
                client_id="fraudradar-scorer-restore-check", max_poll_records=1)
        return self._checker

    def close(self) -> None:
        for client in (self._consumer, self._checker):
            if client is not None:
                client.close()


def _or_unknown(read: Callable[[], T], what: str, partition: int) -> T | None:
    """``read()``, or None when the client fails: "unknown" makes the caller restore, which is always safe."""
    try:
        return read()
    except Exception as exc:
        log.warning(f"{what} unavailable; restoring", extra={"partition": partition, "error": type(exc).__name__})
        return None
