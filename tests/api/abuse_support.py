"""Helpers of the abuse tests (issue #21) and the reliability abuse scenario: the API served the
way ``fraudradar api`` serves it (``services.api.server.uvicorn_config``: header limits,
deadlines, no forwarded headers from untrusted peers), partners with tight limits, and HTTP
clients bound to other loopback source addresses (127.0.0.0/8 is all loopback on Linux), so
"another source address" is a real other address."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from services.api.partners import hash_secret
from tests.api.conftest import SECRETS, ApiServer, ServerThread, partners_yaml, start_api

ABUSE_SECRETS = {
    "bank-w": "bank-w-secret-0123456789",  # watch-list budget of 5 distinct numbers per hour
    "bank-lock": "bank-lock-secret-0123456789",  # small daily quota: a lockout would show at once
    "bank-feedback": "bank-feedback-secret-0123456789",
}
WATCH_BUDGET = 5
LOCK_QUOTA = 40


JWT_KEY = ec.generate_private_key(ec.SECP256R1())
JWT_KID = "bank-jwt-key-1"


def _jwks() -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(JWT_KEY.public_key()))
    return {"keys": [{**jwk, "kid": JWT_KID, "use": "sig", "alg": "ES256"}]}


def client_assertion(audience: str = "fraudradar") -> str:
    """A private_key_jwt assertion of ``bank-jwt`` (a fresh jti)."""
    now = int(time.time())
    claims = {
        "iss": "bank-jwt",
        "sub": "bank-jwt",
        "aud": audience,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, JWT_KEY, algorithm="ES256", headers={"kid": JWT_KID})


def abuse_partners() -> dict[str, Any]:
    SECRETS.update(ABUSE_SECRETS)
    big_rate = {"per_second": 5000, "burst": 5000}
    extra = [
        {
            "id": "bank-w",
            "type": "bank",
            "disclosure": "reasons",
            "alerts": "watchlist",
            "alert_min_level": "low",
            "rate": big_rate,
            "lookup_budget_per_hour": WATCH_BUDGET,
        },
        {"id": "bank-lock", "type": "bank", "rate": big_rate, "quota_per_day": LOCK_QUOTA},
        {
            "id": "bank-feedback",
            "type": "bank",
            "alerts": "watchlist",
            "alert_min_level": "low",
            "rate": big_rate,
        },
    ]
    for entry in extra:
        entry["client_secret_hash"] = hash_secret(ABUSE_SECRETS[entry["id"]])
    extra.append({"id": "bank-jwt", "type": "bank", "jwks": _jwks(), "rate": big_rate})
    return partners_yaml(extra)


def start_guarded_api(tmp: Path, bootstrap: str, prefix: str, **overrides: Any) -> tuple[ApiServer, ServerThread]:
    """The API served as in production (``uvicorn_config``) with the abuse partners besides the
    usual ones, and the settings ``overrides``."""
    return start_api(tmp, bootstrap, prefix, partners=abuse_partners(), as_served=True, **overrides)


@contextmanager
def guarded_api(tmp: Path, bootstrap: str, prefix: str, **overrides: Any) -> Iterator[ApiServer]:
    """``start_guarded_api`` for the body; the server stops when it ends."""
    server, thread = start_guarded_api(tmp, bootstrap, prefix, **overrides)
    try:
        yield server
    finally:
        thread.stop()


def client_from(server: ApiServer, source: str) -> httpx.Client:
    """An HTTP client whose connections come from ``source`` (a loopback address)."""
    return httpx.Client(base_url=server.base, timeout=20, transport=httpx.HTTPTransport(local_address=source))


def token_request(client: httpx.Client, client_id: str, secret: str) -> httpx.Response:
    return client.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))


def wait_alert(server: ApiServer, cursor: str, alert_id: str) -> None:
    """Until the API serves ``alert_id`` (the telco's feed, entitlement all, from ``cursor``)."""
    from tests.api.conftest import eventually

    def served() -> bool:
        with server.client() as c:
            page = c.get("/v1/alerts", params={"cursor": cursor, "limit": 500}, headers=server.auth("telco-a"))
            return alert_id in [a["alertId"] for a in page.json()["alerts"]]

    eventually(served, timeout_s=20, interval_s=0.1)
