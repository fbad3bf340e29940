"""The JSON log lines and the summary of kafka-python's slow event-loop steps."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from kafka.net.selector import NetworkSelector

from services.common.logs import JsonFormatter, SlowClientSteps, setup_logging
from services.common.metrics import KAFKA_SLOW_STEPS


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, SlowClientSteps]]:
    """The root logger writing JSON lines to a buffer, and the filter on kafka's selector logger
    (what ``setup_logging`` installs), with a summary window long enough for one test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    selector = logging.getLogger("kafka.net.selector")
    steps = SlowClientSteps("test-logs", every_s=3600, warn_s=0.5)
    selector.addFilter(steps)
    try:
        yield stream, steps
    finally:
        selector.removeFilter(steps)
        root.handlers[:], root.level = saved[0], saved[1]


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _slow_step(net: NetworkSelector, seconds: float) -> None:
    async def busy() -> None:
        time.sleep(seconds)       # a step that holds the event loop, as CPU starvation does
    net.run(busy)


def test_slow_client_steps_are_counted_and_summarised_not_logged_one_by_one(
        captured: tuple[io.StringIO, SlowClientSteps]) -> None:
    stream, _ = captured
    counter = KAFKA_SLOW_STEPS.labels(service="test-logs")
    before = counter._value.get()
    net = NetworkSelector()          # kafka-python's own event loop writes the warnings
    try:
        for _ in range(4):
            _slow_step(net, 0.15)
        after_short = _lines(stream)
        _slow_step(net, 0.6)         # past warn_s: written at once, at warning level
    finally:
        net.close()
    assert counter._value.get() - before == 5
    assert not [line for line in _lines(stream) if line["logger"] == "kafka.net.selector"]
    # the first slow step at once (info), the next three only counted
    assert [(line["level"], line["steps"]) for line in after_short] == [("info", 1)]
    summaries = [line for line in _lines(stream) if line["logger"] == "fraudradar.kafka"]
    assert [(line["level"], line["steps"]) for line in summaries] == [("info", 1), ("warning", 4)]
    assert 0.6 <= float(str(summaries[-1]["longest_s"])) < 5


def test_other_records_of_the_selector_logger_pass_unchanged(captured: tuple[io.StringIO, SlowClientSteps]) -> None:
    stream, _ = captured
    logging.getLogger("kafka.net.selector").warning("Task %s left RUNNING after step; demoting", "t")
    assert [(line["logger"], line["msg"]) for line in _lines(stream)] == [
        ("kafka.net.selector", "Task t left RUNNING after step; demoting")]


def test_setup_logging_installs_the_summary_once() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    selector = logging.getLogger("kafka.net.selector")
    try:
        setup_logging("test-setup")
        setup_logging("test-setup")   # a service that sets up twice does not count twice
        assert len([f for f in selector.filters if isinstance(f, SlowClientSteps)]) == 1
    finally:
        selector.filters[:] = [f for f in selector.filters if not isinstance(f, SlowClientSteps)]
        root.handlers[:], root.level = saved[0], saved[1]


def test_a_record_that_does_not_format_passes_through_and_does_not_raise(
        captured: tuple[io.StringIO, SlowClientSteps]) -> None:
    """The filter runs inside kafka-python's network loop: a record whose arguments do not
    format must reach logging's own error report, not raise into the caller."""
    _, steps = captured
    record = logging.LogRecord("kafka.net.selector", logging.WARNING, __file__, 1,
                               "Task %s ran for 0.5s (>0.100s threshold). It is blocking the event loop", ("a", "b"),
                               None)
    assert steps.filter(record) is True
