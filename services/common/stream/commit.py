"""Committing offsets: when (``CommitPolicy``), what must be durable first (``CommitStep``), and
whether this replica may commit at all (the membership fence)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, FencedInstanceIdError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from services.common import metrics
from services.common.stream.exceptions import StreamError
from services.common.stream.sink import OutputSink
from services.common.stream.transaction import Transactions

log = logging.getLogger("fraudradar.stream")


@dataclass
class CommitPolicy:
    """Commit at most once per ``interval_s`` (0 = after every batch)."""

    interval_s: float = 1.0
    _last: float = field(default=0.0, repr=False)

    def due(self, now: float) -> bool:
        return now - self._last >= self.interval_s

    def committed(self, now: float) -> None:
        self._last = now


class CommitStep(Protocol):
    """What must be durable before offsets are committed (a stateful service's changelog).

    ``write`` sends it through the sink (after the batch's outputs were flushed), with the
    writer's group generation and member id; the committer then flushes and checks the sink and
    calls ``written``. Raising skips the commit.
    """

    def write(self, sink: OutputSink, generation: int, member: str) -> None: ...

    def written(self) -> None: ...


class Committer:
    """The offsets processed and not yet committed, and the commit itself (step 3 of the loop)."""

    def __init__(self, consumer: KafkaConsumer, sink: OutputSink, *, service: str, policy: CommitPolicy,
                 fence: bool, flush_timeout_s: float, steps: Sequence[CommitStep] = (),
                 transactions: Transactions | None = None) -> None:
        self.consumer, self.sink, self.service = consumer, sink, service
        self.policy, self.fence, self.flush_timeout_s = policy, fence, flush_timeout_s  # fence: prove membership first
        self.steps = steps            # the caller's sequence itself: steps it adds later take part too
        # exactly-once: the steps' records and the offsets commit in the open transaction
        self.transactions = transactions
        self.pending: dict[TopicPartition, int] = {}
        # per owned partition, an offset that is safe to commit again: the last one committed,
        # or where consumption of the partition began (the committed offset or the reset point)
        self.base: dict[TopicPartition, int] = {}

    def processed(self, tp: TopicPartition, first: int, last: int) -> None:
        """Records ``first``..``last`` of ``tp`` were handled and their outputs acknowledged."""
        self.pending[tp] = last + 1
        self.base.setdefault(tp, first)

    def started(self, tp: TopicPartition, offset: int) -> None:
        """Consumption of ``tp`` (re)starts at ``offset`` (its committed offset, or the log's
        beginning): committing it again changes nothing, and ``past_markers`` may move on from it
        even before a record of ``tp`` is returned (a tail of aborted batches and markers)."""
        self.base.setdefault(tp, offset)

    def forget(self, tp: TopicPartition) -> None:
        """A revoked partition: its uncommitted offsets are its next owner's to replay."""
        self.pending.pop(tp, None)
        self.base.pop(tp, None)

    def maybe_commit(self, force: bool) -> None:
        now = time.monotonic()
        if not (force or self.policy.due(now)):
            return
        self.past_markers()
        if not self.pending:
            return
        if self.transactions is not None:
            self.commit_transaction(now)
            return
        problem = self.membership_problem() if self.fence else None
        if problem is not None:
            pending = sorted(f"{t.topic}[{t.partition}]" for t in self.pending)
            if problem == "lost":
                # a zombie: the partitions' new owner restored from the changelog as it stood and
                # replays the batch; writing now would interleave two writers' state on it
                metrics.COMMITS_FENCED.labels(self.service).inc()
                log.warning("not a member of the group's current generation: state and offsets not written; "
                            "the partitions' owner replays the batch", extra={"partitions": pending})
            else:
                log.warning("commit postponed: state and offsets not written; the batch is redelivered if "
                            "its partitions move", extra={"reason": problem, "partitions": pending})
            self.pending.clear()
            return
        self.write_steps()
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in self.pending.items()}
        self.before_commit()
        try:
            self.consumer.commit(offsets)                      # 3. commit
        except Exception as exc:  # a rebalance raced us: the new owner replays (idempotent outputs)
            log.warning("commit failed; the batch will be redelivered", extra={"error": type(exc).__name__})
            self.pending.clear()
            return
        self.base.update(self.pending)
        self.pending.clear()
        self.policy.committed(now)
        metrics.CONSUMER_COMMITS.labels(self.service).inc()
        metrics.LAST_COMMIT.labels(self.service).set(time.time())

    def commit_transaction(self, now: float) -> None:
        """Steps' records, the offsets (with this member's group metadata: the broker refuses them
        from a member it removed, KIP-447) and the outputs already sent: one transaction.

        Raises ``TransactionAborted`` when it did not commit (aborted here after a failure, or
        the producer was fenced by the broker); the caller resets to the committed state."""
        txn = self.transactions
        assert txn is not None
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in self.pending.items()}
        try:
            txn.begin()
            # the steps' records name the writer's generation; the broker checks the same
            # snapshot with the offsets: a committed transaction's generation was current
            membership: Any = self.consumer.group_metadata()
            if membership.generation_id < 0 and self.consumer.subscription():
                # not a member (kafka-python resets the generation when it learns it was removed):
                # the broker accepts TxnOffsetCommit with generation -1 and no member id without
                # any group check (the API for producers outside a group), so a zombie's commit
                # would land after its successor's. Abort instead: its partitions are someone else's.
                # (A consumer never subscribed, driven by hand, has no group to leave.)
                raise StreamError("not a member of the group's current generation: the transaction is aborted")
            for step in self.steps:
                step.write(self.sink, membership.generation_id, membership.member_id or "")
            self.sink.flush_and_check(self.flush_timeout_s)
            txn.send_offsets(offsets, membership)
            self.before_commit()
            txn.commit()
        except Exception as exc:
            self.pending.clear()
            raise txn.failed(exc) from exc
        txn.committed()
        for step in self.steps:
            step.written()
        self.base.update(self.pending)
        self.pending.clear()
        self.policy.committed(now)
        metrics.CONSUMER_COMMITS.labels(self.service).inc()
        metrics.LAST_COMMIT.labels(self.service).set(time.time())

    def past_markers(self) -> None:
        """Transactional input (ingest's views, the scorer's own links) ends with a commit marker that takes an
        offset and is never returned as a record (nor are aborted batches): commit the
        consumer's position when it stands past the offsets processed, else the group would
        show a lag of one forever. Every record before the position was returned by a poll and
        handled before this commit (the loop is synchronous). A partition counts from where
        its consumption (re)started (``started``, after the restart from the last commit) or from
        its first handled record; one with neither (no ``base``) is left alone: records polled
        before the restart may have been dropped. So a partition whose tail is only aborted
        batches and markers (a fenced zombie's transaction) is committed to its end too."""
        subscription: Any = getattr(self.consumer, "_subscription", None)
        if subscription is None:
            return
        for tp, done in list(self.base.items()):
            target = self.pending.get(tp, done)
            state = subscription.assignment.get(tp)
            if state is None or not state.has_valid_position:
                continue
            position = int(state.position.offset)
            if position > target:
                self.pending[tp] = position

    def before_commit(self) -> None:
        """Called right before the commit: exactly-once, between the offsets sent to the transaction
        and ``commit_transaction``; else after the outputs' flush, before the offset commit (tests
        freeze or kill a replica here)."""

    def write_steps(self) -> None:
        """Right before the commit: each step's writes, flushed and checked (then ``written``)."""
        if not self.steps:
            return
        membership: Any = self.consumer.group_metadata()
        for step in self.steps:
            step.write(self.sink, membership.generation_id, membership.member_id or "")
        self.sink.flush_and_check(self.flush_timeout_s)
        for step in self.steps:
            step.written()

    def membership_problem(self) -> str | None:
        """None when the broker still counts this consumer a member of the group's current
        generation; else why not: ``lost`` (removed or fenced), ``rebalancing``, ``unreachable``.

        The local view is not enough: a process frozen longer than the session timeout (a paused
        pod, a VM migration, CPU throttling) resumes believing it owns its partitions until its
        next heartbeat comes back, and another replica may have restored them meanwhile. So the
        offsets in ``base`` (already committed, or where consumption began: committing them
        again changes nothing) are committed with this member's generation; the broker refuses
        that from a member it removed or fenced. Once it accepts, the partitions cannot move
        before this member misses a whole session timeout or a rebalance timeout, far longer
        than writing and flushing one changelog.
        """
        if self.consumer.group_metadata().generation_id < 0:
            return "lost"                         # left the group (e.g. max.poll.interval passed)
        proof = {tp: OffsetAndMetadata(self.base[tp], "", -1) for tp in self.pending if tp in self.base}
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
