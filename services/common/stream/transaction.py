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
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kafka import KafkaProducer
from kafka.errors import (
    InvalidProducerEpochError,
    KafkaError,
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

    def __init__(self, service: str, make_producer: Callable[[], KafkaProducer]) -> None:
        self.service = service
        self._make = make_producer
        self.producer = make_producer()
        self.open = False
        self._initialised = False

    def init(self) -> None:
        """Register the transactional id (fences an older producer with the same id and aborts
        its open transaction)."""
        if not self._initialised:
            self.producer.init_transactions()
            self._initialised = True

    def begin(self) -> None:
        if not self.open:
            self.init()
            self.producer.begin_transaction()
            self.open = True

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
        try:
            self.producer.abort_transaction()
            metrics.TRANSACTIONS.labels(self.service, "aborted").inc()
            log.warning("transaction aborted", extra={"error": f"{type(cause).__name__}: {cause}"[:300]})
        except FENCED:
            metrics.TRANSACTIONS.labels(self.service, "fenced").inc()
            log.warning("producer fenced by the broker while aborting; a new producer takes its id")
            self.replace()
            return TransactionAborted("producer fenced while aborting", fenced=True)
        except KafkaError as abort_exc:    # fatal state: start over with a new producer
            log.warning("abort failed; a new producer takes the id", extra={"error": type(abort_exc).__name__})
            metrics.TRANSACTIONS.labels(self.service, "aborted").inc()
            self.replace()
        return TransactionAborted(f"transaction aborted: {type(cause).__name__}: {cause}"[:300], fenced=False)

    def replace(self) -> None:
        try:
            self.producer.close(timeout=5)
        except Exception as exc:   # the fenced producer is discarded either way
            log.info("closing the fenced producer failed", extra={"error": type(exc).__name__})
        self.producer = self._make()
        self._initialised = False
        self.init()
