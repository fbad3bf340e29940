"""Guards of the test run itself, loaded by ``tests/conftest.py`` (``pytest_plugins``).

* **No silent skips.** A skipped test fails the run: a missing tool, a failed import or a missing
  file is a broken checkout, not a pass. What a developer does not want to run they deselect on
  purpose (``-m "not kafka"``, ``-k``, ``--deselect``, a path): deselected tests are not run and
  not reported as skipped. ``xfail`` keeps its meaning.
* **Markers follow fixtures.** ``kafka`` marks exactly the tests that use a broker: the session
  broker (the ``kafka_broker`` fixture, directly, through ``kafka_bootstrap``/``topic_prefix``/
  the API fixtures, or through ``request.getfixturevalue``) or one they start themselves
  (``LocalKafka.start``), or a child process of theirs does (``@pytest.mark.kafka(child=True)``,
  the demo's own broker). A test using a broker without the marker fails, and so does a marked
  test that used none, so ``-m "not kafka"`` is a fast loop that never needs Java.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.devtools.kafka_local import LocalKafka

BROKER_FIXTURE = "kafka_broker"
SKIP_FAILS = "skipped tests fail the run (deselect on purpose with -m/-k/--deselect instead)"
_OUTCOMES = pytest.StashKey[dict[str, str]]()


def _skip_reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()   # type: ignore[attr-defined]
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{SKIP_FAILS}: {_skip_reason(report.longrepr)}"
    item.stash[_OUTCOMES] = {**item.stash.get(_OUTCOMES, {}), report.when: report.outcome}


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()   # type: ignore[attr-defined]
    if report.skipped:       # a module-level importorskip / skip(allow_module_level=True)
        report.outcome = "failed"
        report.longrepr = f"{SKIP_FAILS}: {_skip_reason(report.longrepr)}"


def _uses_broker_fixture(item: pytest.Item) -> bool:
    return BROKER_FIXTURE in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items
                if _uses_broker_fixture(item) and item.get_closest_marker("kafka") is None]
    if unmarked:
        raise pytest.UsageError("tests using the Kafka broker fixtures lack @pytest.mark.kafka:\n  "
                                + "\n  ".join(unmarked))


@pytest.fixture(autouse=True)
def _kafka_marker_matches_use(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that starts or requests a broker without the marker, or has the marker and
    used no broker (checked after a passing call, so a test that failed early is not blamed)."""
    marker = request.node.get_closest_marker("kafka")
    marked = marker is not None
    # a test whose broker runs in a child process it starts (the demo's own) says so: child=True
    in_child = marker is not None and bool(marker.kwargs.get("child"))
    started: list[LocalKafka] = []
    real_start = LocalKafka.start

    def start(self: LocalKafka) -> LocalKafka:
        broker = real_start(self)            # a start that fails (no java, say) used no broker
        started.append(broker)
        if not marked:
            broker.stop()
            pytest.fail(f"{request.node.nodeid} starts a Kafka broker but is not marked @pytest.mark.kafka")
        return broker

    monkeypatch.setattr(LocalKafka, "start", start)
    yield
    requested = set(getattr(request, "_fixture_defs", {})) | set(getattr(request.node, "fixturenames", ()))
    used = BROKER_FIXTURE in requested or bool(started) or in_child
    if used and not marked:
        pytest.fail(f"{request.node.nodeid} uses the Kafka broker but is not marked @pytest.mark.kafka")
    if marked and not used and request.node.stash.get(_OUTCOMES, {}).get("call") == "passed":
        pytest.fail(f"{request.node.nodeid} is marked @pytest.mark.kafka but used no broker: "
                    "drop the marker so `-m 'not kafka'` runs it")
