"""The stream loop and its parts, one concept a module, composed by ``runner.StreamRunner``:

- ``runner``: the consumer loop (``StreamRunner``, ``StreamConfig``, ``BatchProcessor``);
- ``sink``: a batch's outputs, flushed and checked (``OutputSink``, ``murmur2_partition``);
- ``commit``: when and whether to commit, and what to write first (``Committer``,
  ``CommitPolicy``, ``CommitStep``);
- ``dlq``: dead letters and the poison limit (``DlqGuard``, ``DlqLimit``);
- ``rebalance``: listener, stuck-rejoin watch, restart from the committed offsets;
- ``probes``: health, lag and batch metrics, the crc32c start-up check;
- ``exceptions``: why the loop stops.
"""

from services.common.stream.commit import CommitPolicy, CommitStep, Committer
from services.common.stream.dlq import DlqGuard, DlqLimit, Record
from services.common.stream.exceptions import (
    Crc32cMissing,
    DeliveryFailed,
    DlqLimitExceeded,
    RejoinStalled,
    StreamError,
)
from services.common.stream.probes import check_crc32c
from services.common.stream.rebalance import Listener, RebalanceWatch
from services.common.stream.runner import BatchProcessor, StreamConfig, StreamRunner
from services.common.stream.sink import OutputSink, murmur2_partition

__all__ = ["BatchProcessor", "CommitPolicy", "CommitStep", "Committer", "Crc32cMissing", "DeliveryFailed",
           "DlqGuard", "DlqLimit", "DlqLimitExceeded", "Listener", "OutputSink", "RebalanceWatch", "Record",
           "RejoinStalled", "StreamConfig", "StreamError", "StreamRunner", "check_crc32c", "murmur2_partition"]
