"""Issue #21, item 7: what must hold across replicas does. Two API replicas on one broker
(served as in production): the hourly lookup budget and the daily quota are shared through
``fraudradar.partner-state`` usage records (no per-replica divisor), and a client assertion
used at one replica is refused at the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.abuse_support import LOCK_QUOTA, WATCH_BUDGET, client_assertion, start_guarded_api
from tests.api.conftest import ApiServer, eventually

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def replicas(
    kafka_bootstrap: str, api_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, ApiServer]]:
    tmp: Path = tmp_path_factory.mktemp("abuse-replicas")
    a, thread_a = start_guarded_api(tmp, kafka_bootstrap, api_prefix)
    try:
        b, thread_b = start_guarded_api(tmp, kafka_bootstrap, api_prefix)
        try:
            yield a, b
        finally:
            thread_b.stop()
    finally:
        thread_a.stop()


def _others(server: ApiServer, partner: str, kind: str) -> int:
    import time

    window = int(time.time() // (86400 if kind == "quota" else 3600))
    service = server.service
    return int(service.pstate.others_usage(partner, kind, window, service.replica_id))


def test_the_lookup_budget_is_one_across_replicas(replicas: tuple[ApiServer, ApiServer]) -> None:
    a, b = replicas
    first = WATCH_BUDGET - 2
    with a.client() as c:
        for i in range(first):
            r = c.post("/v1/risk/numbers:lookup", json={"phoneNumber": f"+3162600{i:04d}"}, headers=a.auth("bank-w"))
            assert r.status_code == 200, r.text
    eventually(lambda: _others(b, "bank-w", "budget") == first)
    with b.client() as c:
        codes = [
            c.post(
                "/v1/risk/numbers:lookup", json={"phoneNumber": f"+3162601{i:04d}"}, headers=b.auth("bank-w")
            ).status_code
            for i in range(4)
        ]
    assert codes == [200, 200, 429, 429]


def test_the_daily_quota_is_one_across_replicas(replicas: tuple[ApiServer, ApiServer]) -> None:
    a, b = replicas
    with a.client() as c:
        headers = a.auth("bank-lock")  # the token request counts as one request
        for _ in range(LOCK_QUOTA // 2):
            assert (
                c.post("/v1/risk/numbers:lookup", json={"phoneNumber": "+31626100001"}, headers=headers).status_code
                == 200
            )
    spent_a = LOCK_QUOTA // 2 + 1
    eventually(lambda: _others(b, "bank-lock", "quota") == spent_a)
    with b.client() as c:
        headers = b.auth("bank-lock")
        codes = [
            c.post("/v1/risk/numbers:lookup", json={"phoneNumber": "+31626100001"}, headers=headers).status_code
            for _ in range(LOCK_QUOTA)
        ]
    left = LOCK_QUOTA - spent_a - 1
    assert codes == [200] * left + [429] * (LOCK_QUOTA - left)


def test_a_client_assertion_is_used_once_across_replicas(replicas: tuple[ApiServer, ApiServer]) -> None:
    a, b = replicas
    assertion = client_assertion()
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    assert httpx.post(a.base + "/oauth2/token", data=form).status_code == 200
    eventually(lambda: b.service.assertion_used(f"bank-jwt:{_jti(assertion)}"))
    replay = httpx.post(b.base + "/oauth2/token", data=form)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    fresh = {**form, "client_assertion": client_assertion()}
    assert httpx.post(b.base + "/oauth2/token", data=fresh).status_code == 200


def _jti(assertion: str) -> str:
    import jwt

    return str(jwt.decode(assertion, options={"verify_signature": False})["jti"])
