"""Issue #21, item 6: server limits (header size and count, head and body deadlines, idle
connections), purpose enforcement, the public URL from the settings (never the Host header),
webhook URLs never logged with their query string, one code for 429, the OpenAPI correlator
pattern and the server agreeing (real broker, the API served as in production)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.deps import CORRELATOR_PATTERN
from tests.api.abuse_support import guarded_api, wait_alert
from tests.api.conftest import SECRETS, ApiServer, ScorerOutput, eventually
from tests.api.test_webhooks_feed import Receiver

pytestmark = pytest.mark.kafka
HEAD_TIMEOUT_S, BODY_TIMEOUT_S = 1.0, 1.0


@pytest.fixture(scope="module")
def guarded(kafka_bootstrap: str, api_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with guarded_api(
        tmp_path_factory.mktemp("abuse-server"),
        kafka_bootstrap,
        api_prefix,
        header_timeout_s=HEAD_TIMEOUT_S,
        body_timeout_s=BODY_TIMEOUT_S,
        max_header_bytes=16 * 1024,
        max_headers=64,
    ) as server:
        yield server


def _port(api: ApiServer) -> int:
    return int(api.base.rsplit(":", 1)[1])


def _closed_by_server(sock: socket.socket, within_s: float) -> tuple[bool, bytes]:
    """Read until the server closes the connection (True) or ``within_s`` passes (False)."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def test_large_or_many_headers_answer_431(guarded: ApiServer) -> None:
    api = guarded
    with api.client() as c:
        big = c.get("/oauth2/jwks.json", headers={"x-pad": "a" * (1024 * 1024)})
        assert big.status_code == 431 and big.headers["connection"] == "close"
        many = c.get("/oauth2/jwks.json", headers={f"x-h{i}": "1" for i in range(100)})
        assert many.status_code == 431
        assert c.get("/oauth2/jwks.json", headers={"x-pad": "a" * 4000}).status_code == 200


def test_slow_or_idle_connections_are_closed(guarded: ApiServer) -> None:
    api = guarded
    port = _port(api)
    with socket.create_connection(("127.0.0.1", port)) as idle:
        closed, _ = _closed_by_server(idle, HEAD_TIMEOUT_S + 10)
        assert closed, "an idle new connection stayed open"
    with socket.create_connection(("127.0.0.1", port)) as drip:
        drip.sendall(b"GET /oauth2/jwks.json HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + HEAD_TIMEOUT_S + 10
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                drip.sendall(b"x")  # one byte now and then: the head never completes
            except OSError:
                closed = True
                break
            closed, _ = _closed_by_server(drip, 0.3)
        assert closed, "a dripped head kept the connection"
    token = api.token("bank-a")
    with socket.create_connection(("127.0.0.1", port)) as body:
        body.sendall(
            b"POST /v1/risk/numbers:lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 40\r\n\r\n{"
        )
        closed, _ = _closed_by_server(body, BODY_TIMEOUT_S + 10)
        assert closed, "a stalled body kept the connection"


def test_purpose_is_enforced_per_operation(guarded: ApiServer) -> None:
    api = guarded
    r = httpx.post(
        api.base + "/oauth2/token",
        data={"grant_type": "client_credentials", "purpose": "dpv:ServiceProvision"},
        auth=("operator-a", SECRETS["operator-a"]),
    )
    assert r.status_code == 200, r.text
    headers = {"Authorization": "Bearer " + r.json()["access_token"]}
    with api.client() as c:
        lookup = c.post("/v1/risk/numbers:lookup", json={"phoneNumber": "+31624000001"}, headers=headers)
        assert lookup.status_code == 403 and "dpv:FraudPreventionAndDetection" in lookup.json()["message"]
        override = c.post(
            "/v1/overrides",
            json={"phoneNumber": "+31624000001", "action": "clear", "reason": "abuse test", "expiresInHours": 1},
            headers=headers,
        )
        assert override.status_code == 403
        assert c.get("/v1/webhooks", headers=headers).status_code == 200  # serves ServiceProvision
    doc = httpx.get(api.base + "/openapi.json").json()
    assert doc["paths"]["/v1/risk/numbers:lookup"]["post"]["x-purposes"] == ["dpv:FraudPreventionAndDetection"]


def test_host_header_is_never_reflected(guarded: ApiServer) -> None:
    api = guarded
    with api.client() as c:
        meta = c.get("/.well-known/oauth-authorization-server", headers={"Host": "evil.example"}).json()
        assert meta["token_endpoint"] == api.base + "/oauth2/token"
        slash = c.get("/v1/alerts/", headers={"Host": "evil.example"}, follow_redirects=False)
        assert "evil.example" not in slash.headers.get("location", "")


def test_webhook_urls_are_not_logged_with_their_query(
    guarded: ApiServer, scorer: ScorerOutput, caplog: pytest.LogCaptureFixture
) -> None:
    api = guarded
    caplog.set_level(logging.INFO)  # what a deployment logs (LOG_LEVEL defaults to INFO)
    receiver = Receiver()
    try:
        url = receiver.url + "?token=sekrit-query-value"
        with api.client() as c:
            start = c.get("/v1/alerts", params={"limit": 500}, headers=api.auth("telco-a")).json()["nextCursor"]
            r = c.post("/v1/webhooks", json={"url": url, "events": ["alert.raised"]}, headers=api.auth("telco-a"))
            assert r.status_code == 201, r.text
            receiver.secret = r.json()["secret"]
        alert = scorer.alert("+31624100001")
        scorer.flush()
        wait_alert(api, start, alert.alert_id)
        eventually(lambda: any(v["data"]["alertId"] == alert.alert_id for v in receiver.verified), timeout_s=20)
    finally:
        receiver.close()
    assert caplog.records, "nothing was captured: the check would be empty"
    assert not [r.getMessage() for r in caplog.records if "sekrit-query-value" in r.getMessage()]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.from_regex(CORRELATOR_PATTERN, fullmatch=True).filter(lambda s: "\n" not in s))
def test_every_correlator_the_contract_admits_is_taken(correlator: str) -> None:
    """What the published x-correlator pattern admits, the server takes and echoes."""
    api = _SERVER[0]
    r = httpx.get(
        api.base + "/v1/alerts", params={"limit": 1}, headers={**api.auth("bank-a"), "x-correlator": correlator}
    )
    assert r.status_code == 200, (correlator, r.text)
    assert r.headers.get("x-correlator", "") == correlator


_SERVER: list[ApiServer] = []


@pytest.fixture(autouse=True)
def _remember(guarded: ApiServer) -> None:
    _SERVER[:] = [guarded]


def test_operations_endpoints_are_on_their_own_port(guarded: ApiServer) -> None:
    api = guarded
    partner_port = httpx.get(api.base + "/metrics")
    assert partner_port.status_code == 404  # the metrics name every partner and its usage
    assert httpx.get(api.base + "/readyz").json() == {"status": "ready"}  # status only, no detail
    ops = httpx.get(api.ops + "/metrics")
    assert ops.status_code == 200 and "fraudradar_api_requests_total" in ops.text
    assert httpx.get(api.ops + "/readyz").json()["ready"] is True
    assert httpx.get(api.ops + "/healthz").status_code == 200


@pytest.mark.parametrize(("ops_port", "metrics_status"), [(8123, 200), (0, 404)])
def test_metrics_on_the_partner_port_only_when_the_ports_are_one(ops_port: int, metrics_status: int) -> None:
    """The route table (no server needed): a local demo that sets FRAUDRADAR_HTTP_PORT to the
    partner port gets /metrics there; any other setting never serves it on the partner port."""
    from fastapi.testclient import TestClient

    from services.api.app import create_app
    from services.api.config import ApiSettings

    client = TestClient(create_app(ApiSettings(api_port=8123, http_port=ops_port)))
    assert client.get("/metrics").status_code == metrics_status
