"""Static group membership (KIP-345), as the Helm StatefulSets run it: a member with a fixed
instance id gets its partitions at first join, and one restarted after kill -9 within the
session timeout picks them up again without waiting for a rebalance."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.common import topics
from services.common.records import decode_views
from tests.support.kafka_io import produce_all, read_all
from tests.support.procs import kill9, start_service, stop_service, wait_for
from tests.support.streams import MixedStream, mixed_stream

pytestmark = pytest.mark.kafka

# the group session timeout (kafka-python's default, which ingest keeps) and the bound on a
# resume: a restarted static member gets its partitions back at once, so the whole second batch
# is through within process start + a few polls; a dynamic member (or a static member whose id
# is not sent) waits for the dead member's session to expire and a full rebalance: >= 45 s
SESSION_TIMEOUT_S = 45.0
RESUME_WITHIN_S = 25.0


def _number_views(stream: MixedStream) -> int:
    """Number views the good events yield: out + in per SMS or call, one per SIM change."""
    return sum(1 if b'"type":"sim"' in raw else 2
               for (_, raw), reason in zip(stream.records, stream.expected, strict=True) if reason is None)


def test_static_member_consumes_and_resumes_after_kill(kafka_bootstrap: str, topic_prefix: str,
                                                       tmp_path: Path) -> None:
    env = {"FRAUDRADAR_BOOTSTRAP": kafka_bootstrap, "FRAUDRADAR_TOPIC_PREFIX": topic_prefix,
           "FRAUDRADAR_HTTP_PORT": "0", "FRAUDRADAR_INSTANCE_ID": "ingest-0"}
    first = mixed_stream(2000, bad_ratio=0.0, seed=21)
    produce_all(kafka_bootstrap, topic_prefix + topics.RAW, first.records)
    proc = start_service(["ingest"], env, tmp_path / "ingest.log")
    numbers = topic_prefix + topics.NUMBERS

    def views() -> int:
        return sum(len(decode_views(r.value)) for r in read_all(kafka_bootstrap, numbers, timeout_s=5, settle_s=0.3))

    expected_first = _number_views(first)
    assert wait_for(lambda: views() >= expected_first, 90), (tmp_path / "ingest.log").read_text()[-2000:]
    kill9(proc)

    second = mixed_stream(2000, bad_ratio=0.0, seed=22)
    produce_all(kafka_bootstrap, topic_prefix + topics.RAW, second.records)
    total = expected_first + _number_views(second)
    restarted = time.monotonic()
    proc = start_service(["ingest"], env, tmp_path / "ingest2.log")
    try:
        # within the session timeout the same instance id gets its partitions straight back
        resumed = wait_for(lambda: views() >= total, RESUME_WITHIN_S)
        took = time.monotonic() - restarted
        assert resumed, f"no resume in {took:.0f}s: " + (tmp_path / "ingest2.log").read_text()[-2000:]
        assert took < SESSION_TIMEOUT_S
    finally:
        assert stop_service(proc) == 0
