"""Issue #21, item 5: per-partner caps on concurrent alert streams and on webhooks (also under
parallel registration), and a stream resumes from ``Last-Event-ID`` (or starts at the live
end) instead of replaying the whole backlog (real broker, the API served as in production)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.api.abuse_support import guarded_api, wait_alert
from tests.api.conftest import ApiServer, ScorerOutput

pytestmark = pytest.mark.kafka
STREAMS, WEBHOOKS = 2, 3


@pytest.fixture(scope="module")
def guarded(kafka_bootstrap: str, api_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with guarded_api(
        tmp_path_factory.mktemp("abuse-streams"),
        kafka_bootstrap,
        api_prefix,
        streams_max=STREAMS,
        webhooks_max=WEBHOOKS,
    ) as server:
        yield server


def _first_event(lines: Iterator[str]) -> tuple[str, dict[str, Any]]:
    event_id = ""
    for line in lines:
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            return event_id, json.loads(line[6:])
    raise AssertionError("stream ended without an event")


def test_streams_are_capped_per_partner(guarded: ApiServer) -> None:
    api = guarded
    headers = api.auth("telco-a")
    with ExitStack() as stack:
        for _ in range(STREAMS):
            client = stack.enter_context(httpx.Client(base_url=api.base, timeout=20))
            stream = stack.enter_context(
                client.stream("GET", "/v1/alerts:stream", params={"max_seconds": 30}, headers=headers)
            )
            assert stream.status_code == 200
        with httpx.Client(base_url=api.base, timeout=20) as c:
            over = c.get("/v1/alerts:stream", params={"max_seconds": 1}, headers=headers)
            assert over.status_code == 429 and over.json()["code"] == "TOO_MANY_REQUESTS"
            # another partner is not affected
            assert (
                c.get("/v1/alerts:stream", params={"max_seconds": 1}, headers=api.auth("platform-a")).status_code == 200
            )
    # the slots come back when the streams end
    with httpx.Client(base_url=api.base, timeout=20) as c:
        assert c.get("/v1/alerts:stream", params={"max_seconds": 1}, headers=headers).status_code == 200


def test_stream_starts_live_and_resumes_from_last_event_id(guarded: ApiServer, scorer: ScorerOutput) -> None:
    api = guarded
    headers = api.auth("telco-a")
    with httpx.Client(base_url=api.base, timeout=20) as c:
        start = c.get("/v1/alerts", params={"limit": 500}, headers=headers).json()["nextCursor"]
    backlog = [scorer.alert(f"+3162300{i:04d}") for i in range(5)]
    scorer.flush()
    for alert in backlog:  # all of it served before the stream opens
        wait_alert(api, start, alert.alert_id)
    with (
        httpx.Client(base_url=api.base, timeout=20) as c,
        c.stream("GET", "/v1/alerts:stream", params={"max_seconds": 20}, headers=headers) as stream,
    ):
        live = [scorer.alert("+31623010001")]
        scorer.flush()
        lines = stream.iter_lines()
        first_id, first = _first_event(lines)
    # no backlog: the first event is the alert raised after the stream opened
    assert first["alertId"] == live[0].alert_id
    live.append(scorer.alert("+31623010002"))  # raised while the client is away
    scorer.flush()
    with (
        httpx.Client(base_url=api.base, timeout=20) as c,
        c.stream(
            "GET", "/v1/alerts:stream", params={"max_seconds": 20}, headers={**headers, "Last-Event-ID": first_id}
        ) as stream,
    ):
        _, resumed = _first_event(stream.iter_lines())
    assert resumed["alertId"] == live[1].alert_id


def test_webhook_cap_holds_under_parallel_registration(guarded: ApiServer) -> None:
    api = guarded
    headers = api.auth("platform-a")

    def register(i: int) -> int:
        with httpx.Client(base_url=api.base, timeout=20) as c:
            r = c.post(
                "/v1/webhooks",
                json={"url": f"http://127.0.0.1:9/hook/{i}", "events": ["alert.raised"]},
                headers=headers,
            )
            return r.status_code

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(register, range(12)))
    with httpx.Client(base_url=api.base, timeout=20) as c:
        registered = c.get("/v1/webhooks", headers=headers).json()["webhooks"]
    assert codes.count(201) == WEBHOOKS == len(registered), codes
    assert set(codes) == {201, 409}
