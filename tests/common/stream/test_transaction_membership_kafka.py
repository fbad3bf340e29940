"""A transaction never commits for a consumer that is not a member of the group, on the real broker.

kafka-python resets a consumer's generation to -1 (and its member id to "") when the coordinator
removed it — a freeze past the session timeout. The broker does not check transactional offsets
sent with generation -1 and no member id against the group (that form is meant for consumers
outside group management), so a zombie's commit would go through with its stale state. The
committer refuses to commit such a transaction and aborts it.
"""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.common.stream import CommitPolicy, Committer, DlqGuard, DlqLimit, OutputSink
from services.common.stream.transaction import TransactionAborted, Transactions
from services.common.topics import ensure_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def test_a_consumer_outside_the_group_commits_no_transaction(kafka_bootstrap: str) -> None:
    prefix = f"m{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=1)
    source, output = prefix + "fraudradar.numbers", prefix + "fraudradar.risk"
    group = f"member-{uuid.uuid4().hex[:6]}"
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False,
                             isolation_level="read_committed")
    tp = TopicPartition(source, 0)
    consumer.assign([tp])                  # no group membership: generation -1, member id ""
    assert consumer.group_metadata().generation_id < 0

    def make() -> KafkaProducer:
        return KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"t-{uuid.uuid4().hex[:8]}")

    transactions = Transactions("test", make)
    sink = OutputSink(transactions.producer, "test", prefix + "fraudradar.dlq", DlqGuard(DlqLimit()))
    committer = Committer(consumer, sink, service="test", policy=CommitPolicy(1.0), fence=False,
                          flush_timeout_s=10, transactions=transactions)
    reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None, isolation_level="read_committed")
    try:
        transactions.begin()
        sink.send(output, b"k", b"an output of the batch", partition=0)
        committer.processed(tp, 0, 4)
        with pytest.raises(TransactionAborted, match="not a member"):
            committer.commit_transaction(time.monotonic())
        assert consumer.committed(tp) is None              # no offsets
        out = TopicPartition(output, 0)
        reader.assign([out])
        reader.seek_to_beginning(out)
        end = reader.end_offsets([out])[out]
        seen = []
        while reader.position(out) < end:
            for records in reader.poll(timeout_ms=1000).values():
                seen += records
        assert seen == []                                  # the output was aborted (or never written)
    finally:
        reader.close()
        transactions.producer.close()
        consumer.close()
