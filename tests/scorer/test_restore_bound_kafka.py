"""A partition's state restore is bounded: it logs where it stands, and stops the process when
its read position stands still (on the real broker)."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from services.common import topics
from services.common.topics import ensure_topics
from services.scorer.exceptions import RestoreStalled
from services.scorer.policy import Policy
from services.scorer.restore import Restorer
from services.scorer.settings import ScorerSettings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def test_a_restore_that_makes_no_progress_logs_and_stops(kafka_bootstrap: str, caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The restore reads ``scorer-state[p]`` up to an end it must reach. Here the end is past
    anything the partition holds (an empty changelog, an end of 5), the shape of a read that
    never gets its records (the leader unreachable, a fetch never answered): the restore says where
    it stands and gives up with ``RestoreStalled`` instead of polling on the processing thread forever."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=3)
    settings = ScorerSettings(bootstrap=kafka_bootstrap, topic_prefix=prefix)
    pseudonymizer = settings.pseudonymizer()
    restorer = Restorer(settings.kafka_config(), Policy.load(pseudonymizer, None), pseudonymizer, seed=0,
                        state_topic=settings.topic(topics.SCORER_STATE),
                        input_topics=[settings.topic(name) for name in topics.SCORER_INPUTS],
                        restore_stall_s=3.0, progress_every_s=1.0)
    monkeypatch.setattr(restorer, "_stable_end", lambda tp: 5)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.INFO, logger="fraudradar.scorer"), pytest.raises(RestoreStalled):
            restorer.restore(0)
    finally:
        restorer.close()
    assert time.monotonic() - started < 30
    progress = [r for r in caplog.records if r.getMessage() == "restoring partition state"]
    assert progress and all(getattr(r, "end") == 5 and getattr(r, "position") == 0 for r in progress)
    assert any(r.getMessage() == "partition state restore made no progress; exiting" for r in caplog.records)
