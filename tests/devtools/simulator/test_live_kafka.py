"""``simulate --to-kafka`` against the real broker: every event arrives, re-timed to wall clock."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from services.common.topics import RAW, topic_name
from services.devtools.simulator.cli import main

pytestmark = pytest.mark.kafka


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[tuple[bytes, dict]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000)
    got: list[tuple[bytes, dict]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got += [(r.key, orjson.loads(r.value)) for r in records]
    finally:
        consumer.close()
    return got


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_streams_the_same_events_live(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    args = ["--subscribers", "300", "--duration", "1h", "--seed", "5", "--scenarios", "wangiri,sms_farm", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "file")]) == 0
    expected = [orjson.loads(line) for line in (tmp_path / "file" / "events.jsonl").read_bytes().splitlines()]
    started = int(time.time() * 1000)
    assert main([*args, "--out", str(tmp_path / "live"), "--to-kafka", kafka_bootstrap, "--rate", "3000",
                 "--topic-prefix", topic_prefix]) == 0
    finished = int(time.time() * 1000)
    got = _consume_all(kafka_bootstrap, topic_name(topic_prefix, RAW), len(expected))
    assert len(got) == len(expected)
    assert sorted(e["event_id"] for _, e in got) == sorted(e["event_id"] for e in expected)
    # same events apart from the time: compare without occurred_at
    strip = lambda e: {k: v for k, v in e.items() if k != "occurred_at"}  # noqa: E731
    by_id = {e["event_id"]: strip(e) for e in expected}
    assert all(by_id[e["event_id"]] == strip(e) for _, e in got)
    # live: event time follows the wall clock of the run
    times = [_ms(e["occurred_at"]) for _, e in got]
    assert started - 2000 <= min(times) and max(times) <= finished + 2000
    # keyed by the originator as a telco would partition (a line change: by its number)
    for key, e in got:
        line = e.get("sim") or e.get("forwarding") or e.get("subscription") or {}
        assert key.decode() == (e.get("a_number") or line["msisdn"])
    rows = [orjson.loads(t) for t in (tmp_path / "live" / "truth.jsonl").read_bytes().splitlines()]
    truth = [t for t in rows if t.get("label") != "negative"]   # hard-negative labels carry no times
    assert truth and all(started - 2000 <= _ms(t["start"]) <= finished + 2000 for t in truth)
    assert (tmp_path / "live" / "world.json").exists()
