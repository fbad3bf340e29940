"""The scorer's feedback feed: a broker that does not answer when the feed first connects is
retried at the next poll (it used to raise out of the scorer's loop and stop the process), and
once reachable the feed applies the reports to the scorer owning the entity's partition."""

from __future__ import annotations

import socket

import pytest

from services.common.records import Feedback, encode
from services.common.stream import murmur2_partition
from services.scorer.feedback import FeedbackFeed
from services.scorer.restore import Owned
from tests.scorer.helpers import pid
from tests.support.kafka_io import produce_all


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])        # nothing listens once the socket is closed


@pytest.mark.kafka
def test_an_unreachable_feed_is_retried_and_then_applies_its_reports(kafka_bootstrap: str, topic_prefix: str) -> None:
    from tests.scorer.test_engine import engine

    topic = topic_prefix + "fraudradar.feedback"
    entity = pid("feedback-feed-1")
    produce_all(kafka_bootstrap, topic, [(entity.encode(), encode(Feedback(
        report_id="r-1", partner="bank-a", entity_type="number", entity=entity, label="confirmed_fraud",
        reported_at="2026-09-21T00:00:00Z")))])
    scorer = engine()
    owned = {murmur2_partition(entity.encode(), 1): Owned(scorer)}

    feed = FeedbackFeed({"bootstrap_servers": [f"127.0.0.1:{_closed_port()}"], "request_timeout_ms": 1000,
                         "api_version_auto_timeout_ms": 1000}, topic, poll_s=0.0)
    feed.poll(owned, 1)                        # no broker answers: no exception, nothing applied
    assert feed.open_failures == 1 and feed._consumer is None
    assert scorer.state.feedback_offset == 0

    feed.kafka_config = {"bootstrap_servers": [kafka_bootstrap]}
    try:
        for _ in range(200):                   # the next polls connect and read the report
            feed.poll(owned, 1)
            if scorer.state.feedback_offset:
                break
    finally:
        feed.close()
    assert feed.open_failures == 1
    assert scorer.state.feedback_offset == 1   # the report was handed to the owning scorer
