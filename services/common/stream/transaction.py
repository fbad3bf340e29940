"""Exactly-once: each commit is one Kafka transaction (``StreamConfig.exactly_once``).

The batch's outputs, dead letters, the commit steps' records (the scorer's changelog and model
journal) and the consumed offsets (``send_offsets_to_transaction`` with the consumer's full
group metadata, KIP-447) commit together or not at all. The broker fences zombies itself:

- a member the group coordinator removed (a freeze past its session) has its
  ``TxnOffsetCommit`` refused (stale generation: the transaction is aborted and the processor's
  state reset to what was committed);
- a member kafka-python already knows it lost (its generation reset to -1) never commits: the
  broker would not check offsets sent with generation -1 and no member id against the group, so
  the committer aborts such a transaction itself;
- a transaction left open past ``transaction_timeout_ms`` (a freeze between produce and commit)
  is aborted by the broker's transaction coordinator, which bumps the producer epoch: the
  frozen producer's ``commit_transaction`` raises ``ProducerFencedError`` /
  ``InvalidProducerEpochError`` when it resumes;
- a consumer reading ``read_committed`` fetches committed offsets with ``require_stable``: a
  successor waits until a pending transaction's offsets are committed or aborted.

Nothing a zombie wrote is visible to ``read_committed`` readers.

Every transactional call waits at most ``call_timeout_s`` (``Transactions._call``).
kafka-python 3.0.12's ``init_transactions`` is bounded by ``max_block_ms``, but
``send_offsets_to_transaction``, ``commit_transaction`` and ``abort_transaction`` wait for their
answer without a bound, and an answer can be lost: when the coordinator's connection is down
(a broker restarted) the sender's ``_maybe_send_pending_request`` gets ``KafkaConnectionError``
from ``await_ready`` with the coordinator already chosen, so it neither sends nor re-queues the
request (its ``target_node`` is set, the retry only happens when it is None), and the caller
waits forever. So the calls are made on the producer's transaction manager with the bound, and
an unanswered one (``TransactionTimeout``) discards the producer: a new one with the same
transactional id, whose ``InitProducerId`` bumps the epoch. The broker then finishes the old
transaction: committed if its ``EndTxn(commit)`` had arrived, else aborted; either way its offsets
and its outputs go together, and the loop restarts every partition from the committed offsets
(``StreamRunner._reset_to_committed``), so ``read_committed`` readers see each output once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import (
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TransactionalIdAuthorizationFailedError,
)

from services.common import metrics
from services.common.stream.exceptions import StreamError

log = logging.getLogger("fraudradar.stream")

# a producer that raised one of these cannot be used again: a newer epoch owns its transactional id
FENCED = (ProducerFencedError, InvalidProducerEpochError)


def is_fenced(exc: BaseException) -> bool:
    """Did the broker fence the producer? The error itself, its cause, or the one kafka-python
    wraps into ``KafkaError("Cannot perform send ...", ProducerFencedError())`` when a send
    follows a transaction the broker aborted (a replica frozen past the transaction timeout
    while processing, not committing)."""
    seen = [exc, exc.__cause__, *getattr(exc, "args", ())]
    cause = exc.__cause__
    if cause is not None:
        seen.extend(getattr(cause, "args", ()))
    return any(isinstance(e, FENCED) for e in seen)


def timed_out(exc: BaseException) -> bool:
    """Did a transactional call or the outputs' flush go unanswered in time (the exception or its
    cause)? The producer may have lost a request: it is replaced, not asked to abort."""
    return any(isinstance(e, (TransactionTimeout, KafkaTimeoutError)) for e in (exc, exc.__cause__))


class TransactionTimeout(StreamError):
    """A transactional call was not answered within ``Transactions.call_timeout_s``: its outcome
    is unknown until a new producer with the same transactional id is initialised."""


class TransactionAborted(StreamError):
    """A commit's transaction did not commit; nothing of it is visible to read_committed readers.
    ``fenced``: the broker fenced the producer (a new one was created)."""

    def __init__(self, message: str, fenced: bool) -> None:
        super().__init__(message)
        self.fenced = fenced


class Transactions:
    """The transactional producer's life: one open transaction at a time, begun lazily before the
    first send of a batch, committed by the ``Committer``, aborted on any failure, and the
    producer replaced when the broker fenced it."""

    def __init__(self, service: str, make_producer: Callable[[], KafkaProducer], *,
                 call_timeout_s: float = 20.0, init_deadline_s: float = 120.0) -> None:
        self.service = service
        self._make = make_producer
        # how long one transactional call may wait for its answer: past the transaction timeout
        # the broker has decided an open transaction's outcome itself, so waiting longer gains nothing
        self.call_timeout_s = call_timeout_s
        # how long ``init`` keeps replacing a producer whose InitProducerId went unanswered (the
        # broker down or restarting) before giving up (the process exits and is restarted)
        self.init_deadline_s = init_deadline_s
        self.producer = make_producer()
        self.open = False
        self._initialised = False

    def _call(self, what: str, start: Callable[[Any], Any]) -> None:
        """Start a transactional request on the producer's transaction manager, wake its sender
        and wait for the answer at most ``call_timeout_s``. Raises the request's error, or
        ``TransactionTimeout`` when none came (kafka-python's own calls would wait forever)."""
        producer: Any = self.producer
        result = start(producer._transaction_manager)
        producer._sender.wakeup()
        if not result.wait(timeout_ms=self.call_timeout_s * 1000):   # raises the request's error
            raise TransactionTimeout(f"{what}: no answer within {self.call_timeout_s:g} s")

    def init(self) -> None:
        """Register the transactional id (fences an older producer with the same id and aborts
        its open transaction, or lets a commit it had sent complete). An InitProducerId left
        unanswered (the broker down; the request can be lost, see the module doc) is retried
        with a new producer until ``init_deadline_s``, then ``StreamError``."""
        if self._initialised:
            return
        deadline = time.monotonic() + self.init_deadline_s
        while True:
            try:
                self._call("init_transactions", lambda tm: tm.initialize_transactions())
                break
            except TransactionTimeout as exc:
                if time.monotonic() >= deadline:
                    raise StreamError(f"transactional producer not initialised in {self.init_deadline_s:g} s: "
                                      f"{exc}") from exc
                log.warning("init_transactions unanswered; a new producer takes the id", extra={"error": str(exc)})
                self._renew(deadline)
        self._initialised = True

    def begin(self) -> None:
        if not self.open:
            self.init()
            self.producer.begin_transaction()
            self.open = True

    def send_offsets(self, offsets: dict[Any, Any], membership: Any) -> None:
        """The consumed offsets join the open transaction (with the group metadata: KIP-447):
        exactly these offsets, none left over from an earlier transaction (``_drop_stale_offsets``)."""
        self._drop_stale_offsets()
        self._call("send_offsets_to_transaction", lambda tm: tm.send_offsets_to_transaction(offsets, membership))

    def _drop_stale_offsets(self) -> None:
        """Forget offsets an earlier, refused ``TxnOffsetCommit`` left in the producer.

        kafka-python 3.0.12's transaction manager keeps the offsets of a transaction in
        ``_pending_txn_offset_commits`` until the broker accepts them, and builds each
        ``TxnOffsetCommit`` from that whole dict. When the group refuses them for a stale
        membership (``UNKNOWN_MEMBER_ID`` / ``ILLEGAL_GENERATION``: a replica that lost its
        partitions while frozen) the transaction is aborted but the entries stay, and nothing
        clears them at the end of a transaction: the next transaction that sends offsets commits
        them too. Those are offsets of partitions this replica processed before it lost them
        (its successor has committed further since, or they moved to another replica), so the
        group's committed offsets went backwards, while this consumer's position stood past
        them: a partition that then showed lag forever (the "stall" of docs/scorer.md). Here no
        transactional call is in flight (each is awaited or the producer replaced), so whatever
        the dict holds is stale."""
        manager: Any = getattr(self.producer, "_transaction_manager", None)
        if manager is None:
            return
        with manager._lock:                       # the sender thread reads the dict under this lock
            pending: dict[Any, Any] | None = getattr(manager, "_pending_txn_offset_commits", None)
            if not pending:
                return
            stale = sorted(f"{tp.topic}[{tp.partition}]" for tp in pending)
            pending.clear()
        metrics.STALE_TXN_OFFSETS.labels(self.service).inc(len(stale))
        log.warning("offsets left in the producer by a refused offset commit dropped; they are not committed "
                    "with this transaction's", extra={"partitions": stale})

    def commit(self) -> None:
        """Commit the open transaction (``committed`` is the caller's to call after its steps)."""
        self._call("commit_transaction", lambda tm: tm.begin_commit())

    def committed(self) -> None:
        self.open = False
        metrics.TRANSACTIONS.labels(self.service, "committed").inc()

    def failed(self, exc: BaseException) -> TransactionAborted:
        """Abort the open transaction (or replace the fenced producer); returns what to raise."""
        self.open = False
        cause = exc.__cause__ if isinstance(exc, StreamError) and exc.__cause__ is not None else exc
        if is_fenced(exc):
            metrics.TRANSACTIONS.labels(self.service, "fenced").inc()
            log.warning("producer fenced by the broker: its transaction was aborted; a new producer takes its id",
                        extra={"error": type(cause).__name__})
            self.replace()
            return TransactionAborted(f"producer fenced: {type(cause).__name__}", fenced=True)
        if isinstance(cause, TransactionalIdAuthorizationFailedError):
            raise StreamError(f"transactional id not authorised: {cause}") from exc
        if isinstance(exc, TransactionTimeout) or isinstance(cause, TransactionTimeout):
            # the producer may have lost the request: its replacement's InitProducerId makes the
            # broker finish the transaction (aborted, or committed if the commit had arrived)
            metrics.TRANSACTIONS.labels(self.service, "aborted").inc()
            log.warning("transactional call unanswered; a new producer takes the id and the broker finishes "
                        "the transaction", extra={"error": str(cause)[:300]})
            self.replace()
            return TransactionAborted(f"transaction abandoned: {cause}"[:300], fenced=False)
        try:
            self._call("abort_transaction", lambda tm: tm.begin_abort())
            metrics.TRANSACTIONS.labels(self.service, "aborted").inc()
            log.warning("transaction aborted", extra={"error": f"{type(cause).__name__}: {cause}"[:300]})
        except FENCED:
            metrics.TRANSACTIONS.labels(self.service, "fenced").inc()
            log.warning("producer fenced by the broker while aborting; a new producer takes its id")
            self.replace()
            return TransactionAborted("producer fenced while aborting", fenced=True)
        except (KafkaError, TransactionTimeout) as abort_exc:  # fatal state or no answer: a new producer
            log.warning("abort failed; a new producer takes the id", extra={"error": type(abort_exc).__name__})
            metrics.TRANSACTIONS.labels(self.service, "aborted").inc()
            self.replace()
        return TransactionAborted(f"transaction aborted: {type(cause).__name__}: {cause}"[:300], fenced=False)

    def replace(self) -> None:
        """A new producer with the same transactional id, initialised (which fences this one)."""
        self._renew(time.monotonic() + self.init_deadline_s)
        self._initialised = False
        self.init()

    def _renew(self, deadline: float) -> None:
        """Discard the producer and make a new one; while no broker answers its bootstrap (the
        constructor raises then), try again until ``deadline``, then ``StreamError``."""
        self._discard()
        while True:
            try:
                self.producer = self._make()
                return
            except KafkaError as exc:
                if time.monotonic() >= deadline:
                    raise StreamError(f"no broker for a new transactional producer: {exc}") from exc
                log.warning("no broker for a new transactional producer yet; trying again",
                            extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
                time.sleep(0.5)

    def _discard(self) -> None:
        """Stop the current producer without sending what it still holds (its transaction is
        abandoned: whatever of it still reaches the broker carries the fenced epoch)."""
        producer: Any = self.producer
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
        try:
            producer.close(timeout=2)
        except Exception as exc:   # discarded either way
            log.info("closing the discarded producer failed", extra={"error": type(exc).__name__})
