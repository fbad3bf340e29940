"""Ingest against the real broker: a mixed stream in, views and DLQ out, nothing lost or leaked."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.common import topics
from services.common.records import decode_views
from services.common.stream import murmur2_partition
from tests.support.kafka_io import header, produce_all, read_all, views_in
from tests.support.privacy import find_plaintext, identifier_forms
from tests.support.procs import ROOT, kill9, start_service, stop_service, wait_for
from tests.support.streams import mixed_stream

pytestmark = pytest.mark.kafka


def _env(bootstrap: str, prefix: str) -> dict[str, str]:
    return {"FRAUDRADAR_BOOTSTRAP": bootstrap, "FRAUDRADAR_TOPIC_PREFIX": prefix, "FRAUDRADAR_HTTP_PORT": "0"}


def _all_committed(bootstrap: str, group: str, topic: str) -> bool:
    """Has ``group`` committed ``topic`` to its end (the high watermark)?"""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(tps)
        committed = {tp: om.offset for tp, om in admin.list_group_offsets({group: None}).get(group, {}).items()}
        return bool(tps) and all(committed.get(tp, 0) >= end for tp, end in ends.items())
    finally:
        admin.close()
        consumer.close()


def _event_id_of_view(view_id_map: dict[str, str], view_id: str) -> str | None:
    return view_id_map.get(view_id)


def _expected_view_ids(stream: object) -> dict[str, str]:
    """view_id -> event_id for every view the good events must produce (number out/in, sim change)."""
    from services.ingest.transform import view_id

    mapping: dict[str, str] = {}
    for (_key, raw), reason in zip(stream.records, stream.expected, strict=True):  # type: ignore[attr-defined]
        if reason is not None:
            continue
        import orjson

        ev = orjson.loads(raw)
        roles = ["change"] if ev["type"] == "sim" else ["out", "in"]
        for role in roles:
            mapping[view_id(ev["operator"], ev["event_id"], "number", role)] = ev["event_id"]
    return mapping


def _new_view_ids(wanted: set[str]) -> Callable[[Any], int]:
    """A ``read_all`` count: how many of ``wanted`` a record holds that no earlier record held."""
    seen: set[str] = set()

    def count(record: Any) -> int:
        new = {v.view_id for v in decode_views(record.value)} & wanted - seen
        seen.update(new)
        return len(new)

    return count


def test_mixed_stream_views_and_dlq(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    stream = mixed_stream(12_000, bad_ratio=0.1, seed=11)
    produce_all(kafka_bootstrap, topic_prefix + topics.RAW, stream.records)
    proc = start_service(["ingest"], _env(kafka_bootstrap, topic_prefix), tmp_path / "ingest.log")
    try:
        expected = _expected_view_ids(stream)
        n_bad = sum(r is not None for r in stream.expected)
        numbers = read_all(kafka_bootstrap, topic_prefix + topics.NUMBERS, expect_at_least=len(expected),
                           count=views_in, timeout_s=120)
        devices = read_all(kafka_bootstrap, topic_prefix + topics.DEVICES, expect_at_least=stream.device_events,
                           count=views_in)
        dlq = read_all(kafka_bootstrap, topic_prefix + topics.DLQ, expect_at_least=n_bad)
    finally:
        assert stop_service(proc) == 0, (tmp_path / "ingest.log").read_text()[-3000:]

    # Every good event appears as its views, exactly once (no crash, no replay here).
    number_views = [(r, v) for r in numbers for v in decode_views(r.value)]
    device_views = [(r, v) for r in devices for v in decode_views(r.value)]
    seen = collections.Counter(v.view_id for _, v in number_views)
    assert set(seen) == set(expected)
    assert max(seen.values()) == 1
    assert len(device_views) == stream.device_events
    assert all(v.entity_type == "device" for _, v in device_views)
    for r, v in number_views + device_views:
        # bundled, but each view sits where Kafka's default partitioner puts its pseudonym
        assert r.partition == murmur2_partition(v.entity.encode(), 3)

    # Every bad event is in the DLQ with the right reason and its source coordinates; nothing else.
    raw_topic = topic_prefix + topics.RAW
    raw = read_all(kafka_bootstrap, raw_topic, expect_at_least=len(stream.records))
    by_offset = {(r.partition, r.offset): r.key for r in raw}
    reason_by_key = {k: reason for (k, _), reason in zip(stream.records, stream.expected, strict=True)}
    assert len(dlq) == n_bad
    for r in dlq:
        assert header(r, "fraudradar.source_topic") == raw_topic
        src = (int(header(r, "fraudradar.source_partition") or -1), int(header(r, "fraudradar.source_offset") or -1))
        assert header(r, "reason") == reason_by_key[by_offset[src]]
        assert r.value == dict(stream.records)[by_offset[src]]  # the original bytes, untouched
    assert collections.Counter(header(r, "reason") for r in dlq) == collections.Counter(
        x for x in stream.expected if x is not None)

    # No plaintext E.164, IMEI or IMSI in any output topic (keys, values, headers) nor the logs.
    forms = identifier_forms(stream.numbers, stream.imeis, stream.imsis)
    blobs = [b for r in numbers + devices for b in (r.key or b"", r.value or b"", *(v for _, v in r.headers))]
    blobs.append((tmp_path / "ingest.log").read_bytes())
    assert find_plaintext(blobs, forms) == []
    # sanity: the scan does find identifiers where they are (the raw topic)
    assert find_plaintext([r.value for r in raw[:200]], forms)


def test_kill_minus_9_mid_stream_loses_nothing(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    stream = mixed_stream(15_000, bad_ratio=0.0, seed=12)
    produce_all(kafka_bootstrap, topic_prefix + topics.RAW, stream.records)
    expected = _expected_view_ids(stream)
    # One static member id for both runs: the restarted ingest takes the killed one's place in
    # the group at once, instead of waiting ~45 s for its session to expire. What is checked is
    # the same: the restart resumes from the committed offsets and loses nothing.
    env = {**_env(kafka_bootstrap, topic_prefix), "FRAUDRADAR_INSTANCE_ID": "ingest-kill-test"}
    proc = start_service(["ingest"], env, tmp_path / "ingest.log")
    numbers_topic = topic_prefix + topics.NUMBERS

    def some_progress() -> bool:
        got = read_all(kafka_bootstrap, numbers_topic, timeout_s=5, settle_s=0.3)
        return sum(len(decode_views(r.value)) for r in got) > len(expected) // 4

    assert wait_for(some_progress, 90), (tmp_path / "ingest.log").read_text()[-2000:]
    kill9(proc)
    proc = start_service(["ingest"], env, tmp_path / "ingest2.log")
    try:
        # The restart replays some views (duplicates): wait for every distinct expected view.
        numbers = read_all(kafka_bootstrap, numbers_topic, expect_at_least=len(expected),
                           count=_new_view_ids(set(expected)), timeout_s=120)
    finally:
        assert stop_service(proc) == 0
    ids = collections.Counter(v.view_id for r in numbers for v in decode_views(r.value))
    assert set(expected) <= set(ids), f"{len(set(expected) - set(ids))} views lost"
    assert set(ids) <= set(expected)  # duplicates allowed, but only of real views (deterministic ids)


@pytest.mark.parametrize("exactly_once", [True, False])
def test_a_crash_between_produce_and_commit_redelivers_no_views(kafka_bootstrap: str, topic_prefix: str,
                                                                tmp_path: Path, exactly_once: bool) -> None:
    """Ingest killed after a commit's views were acknowledged and before its offsets committed:
    exactly-once, that transaction is aborted (the restart's ``init_transactions`` fences the
    dead producer's id) and ``read_committed`` readers see every view once. The control, at
    least once, shows the redelivery: the restarted process's dedupe window is empty."""
    stream = mixed_stream(8_000, bad_ratio=0.0, seed=13)
    produce_all(kafka_bootstrap, topic_prefix + topics.RAW, stream.records)
    expected = _expected_view_ids(stream)
    env = {**_env(kafka_bootstrap, topic_prefix), "FRAUDRADAR_INSTANCE_ID": "ingest-crash-test",
           "FRAUDRADAR_EXACTLY_ONCE": str(exactly_once).lower(), "FRAUDRADAR_MAX_POLL_RECORDS": "1000"}
    log = tmp_path / "ingest.log"
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.crash_in_commit", "ingest"],
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env, "CRASH_AT_COMMIT": "2"},
                            cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    assert proc.wait(timeout=120) == -signal.SIGKILL, log.read_text()[-2000:]
    proc = start_service(["ingest"], env, tmp_path / "ingest2.log")
    numbers_topic = topic_prefix + topics.NUMBERS
    try:
        # the restart has committed every raw event: all it will write is on the topics
        assert wait_for(lambda: _all_committed(kafka_bootstrap, "fraudradar-ingest", topic_prefix + topics.RAW), 120)
        numbers = read_all(kafka_bootstrap, numbers_topic, expect_at_least=len(expected),
                           count=_new_view_ids(set(expected)), timeout_s=120, settle_s=1.0)
    finally:
        assert stop_service(proc) == 0
    ids = collections.Counter(v.view_id for r in numbers for v in decode_views(r.value))
    assert set(ids) == set(expected)
    redelivered = sum(n - 1 for n in ids.values())
    if exactly_once:
        assert redelivered == 0
    else:
        assert redelivered > 0          # the control: the commit the crash cut short came again
