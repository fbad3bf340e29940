"""Fixtures of the API tests: a real broker, a real uvicorn server on loopback, partners of
every type (two banks, to check that one never sees the other's objects), and helpers to put
scorer output on the topics."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from kafka import KafkaProducer

from services.api.app import create_app
from services.api.config import ApiSettings
from services.api.partners import hash_secret
from services.api.server import uvicorn_config
from services.api.tokens import generate_signing_key_pem
from services.common.config import CommonSettings
from services.common.records import Alert, Reason, Risk, Window, encode
from services.common.topics import ALERTS, RISK, ensure_topics

SECRETS = {
    "bank-a": "bank-a-secret-0123456789",
    "bank-b": "bank-b-secret-0123456789",
    "platform-a": "platform-a-secret-0123456789",
    "telco-a": "telco-a-secret-0123456789",
    "operator-a": "operator-a-secret-0123456789",
    "bank-tight": "bank-tight-secret-0123456789",
}
TYPES = {
    "bank-a": "bank",
    "bank-b": "bank",
    "platform-a": "platform",
    "telco-a": "telco",
    "operator-a": "operator",
    "bank-tight": "bank",
}
BIG = {
    "rate": {"per_second": 5000, "burst": 5000},
    "quota_per_day": 10_000_000,
    "lookup_budget_per_hour": 1_000_000,
}


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def partners_yaml(extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {
            "id": "bank-a",
            "type": "bank",
            "disclosure": "reasons",
            "alerts": "watchlist",
            "alert_min_level": "low",
            **BIG,
        },
        {"id": "bank-b", "type": "bank", "disclosure": "level", "alerts": "watchlist", **BIG},
        {
            "id": "platform-a",
            "type": "platform",
            "disclosure": "score",
            "alerts": "all",
            "alert_min_level": "high",
            **BIG,
        },
        {
            "id": "telco-a",
            "type": "telco",
            "disclosure": "full",
            "alerts": "all",
            "alert_min_level": "low",
            **BIG,
        },
        {
            "id": "operator-a",
            "type": "operator",
            "disclosure": "full",
            "alerts": "all",
            "alert_min_level": "low",
            "purposes": ["dpv:FraudPreventionAndDetection", "dpv:ServiceProvision"],
            **BIG,
        },
        {
            "id": "bank-tight",
            "type": "bank",
            "rate": {"per_second": 1, "burst": 3},
            "quota_per_day": 1000,
            "lookup_budget_per_hour": 5,
        },
    ]
    for entry in entries:
        entry["client_secret_hash"] = hash_secret(SECRETS[entry["id"]])
    return {"partners": entries + (extra or [])}


@dataclass
class ApiServer:
    base: str
    settings: ApiSettings
    app: Any
    bootstrap: str
    prefix: str
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10)

    def token(self, client_id: str, scope: str | None = None, purpose: str | None = None) -> str:
        cache_key = f"{client_id}|{scope}|{purpose}"
        if cache_key not in self.tokens:
            form = {"grant_type": "client_credentials"}
            if scope:
                form["scope"] = scope
            if purpose or client_id == "operator-a":
                form["purpose"] = purpose or "dpv:FraudPreventionAndDetection"
            r = httpx.post(
                self.base + "/oauth2/token", data=form, auth=(client_id, SECRETS[client_id]), timeout=10
            )
            assert r.status_code == 200, r.text
            self.tokens[cache_key] = r.json()["access_token"]
        return self.tokens[cache_key]

    def auth(self, client_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(client_id)}"}

    @property
    def ops(self) -> str:
        """Base URL of the operations port (/metrics, /healthz, /readyz)."""
        return f"http://127.0.0.1:{self.app.state.ops_port}"

    @property
    def service(self) -> Any:
        return self.app.state.service

    def pseudonym(self, phone: str) -> str:
        return str(self.app.state.resolver.number(phone))


def bound_socket() -> socket.socket:
    """A loopback socket already bound to a free port. Handing the bound socket to uvicorn
    (rather than a port number it binds later) leaves no window in which another process on
    the machine can take the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServerThread:
    """uvicorn in a background thread on ``sock``, stopped at teardown. With ``settings``,
    served the way ``fraudradar api`` serves it (``services.api.server.uvicorn_config``: header
    limits, deadlines, no forwarded headers from untrusted peers); without, uvicorn's defaults."""

    def __init__(self, app: Any, sock: socket.socket, settings: ApiSettings | None = None) -> None:
        port = int(sock.getsockname()[1])
        config = (uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
                  if settings is None
                  else uvicorn_config(app, settings, host="127.0.0.1", port=port, log_level="warning"))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def start_api(
    tmp: Path, bootstrap: str, prefix: str, *, partners: dict[str, Any] | None = None, as_served: bool = False,
    **overrides: Any,
) -> tuple[ApiServer, ServerThread]:
    """The API on a free loopback port with ``partners`` (default ``partners_yaml()``) and the
    settings ``overrides``; ``as_served``: behind ``uvicorn_config``, as in production."""
    key = tmp / "signing.pem"
    if not key.exists():
        key.write_bytes(generate_signing_key_pem())
    partners_file = tmp / "partners.yaml"
    partners_file.write_text(yaml.safe_dump(partners or partners_yaml()))
    sock = bound_socket()
    port = int(sock.getsockname()[1])
    values: dict[str, Any] = {
        "bootstrap": bootstrap,
        "topic_prefix": prefix,
        "partners_file": str(partners_file),
        "signing_key_file": str(key),
        "public_url": f"http://127.0.0.1:{port}",
        "http_port": 0,  # the operations port (/metrics): any free one
        "webhook_allow_private": True,
        "webhook_allow_http": True,
        "webhook_backoff_s": 0.05,
        "webhook_timeout_s": 2.0,
    }
    values.update(overrides)
    settings = ApiSettings.model_validate(values)
    app = create_app(settings)
    thread = ServerThread(app, sock, settings if as_served else None)
    thread.start()
    server = ApiServer(f"http://127.0.0.1:{port}", settings, app, bootstrap, prefix)
    wait_ready(server)
    return server, thread


def wait_ready(server: ApiServer, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(server.base + "/readyz", timeout=5).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError("API not ready")


@pytest.fixture(scope="module")
def api_prefix(kafka_bootstrap: str) -> str:
    prefix = f"a{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=3)
    return prefix


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap: str, api_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    server, thread = start_api(tmp_path_factory.mktemp("api"), kafka_bootstrap, api_prefix)
    try:
        yield server
    finally:
        thread.stop()


class ScorerOutput:
    """Writes Risk and Alert records the way the scorer does (real broker)."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.settings = CommonSettings(bootstrap=bootstrap, topic_prefix=prefix)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.pseudonymizer = self.settings.pseudonymizer()
        self.discloser = self.settings.discloser()

    def risk(self, phone: str, level: str = "high", score: int = 80, **kw: Any) -> Risk:
        entity = self.pseudonymizer("msisdn", phone)
        now = datetime.now(UTC)
        risk = Risk(
            entity_type="number",
            entity=entity,
            score=score,
            level=level,  # type: ignore[arg-type]
            reasons=[
                Reason(
                    "HIGH_RECIPIENT_DIVERSITY",
                    "recipients_1h",
                    412,
                    "1h",
                    "p99.9",
                    "412 distinct recipients in 1h, p99.9",
                )
            ],
            updated_at=iso(now),
            expires_at=iso(now + timedelta(hours=6)),
            model_version="rules-1",
            first_flagged_at=iso(now - timedelta(minutes=5)),
            number_enc=self.discloser.seal(phone, entity),
            **kw,
        )
        self.producer.send(self.settings.topic(RISK), key=f"number:{entity}".encode(), value=encode(risk))
        return risk

    def tombstone(self, phone: str) -> None:
        entity = self.pseudonymizer("msisdn", phone)
        self.producer.send(self.settings.topic(RISK), key=f"number:{entity}".encode(), value=None)

    def alert(self, phone: str, level: str = "high", score: int = 80) -> Alert:
        entity = self.pseudonymizer("msisdn", phone)
        now = datetime.now(UTC)
        alert = Alert(
            alert_id=uuid.uuid4().hex,
            entity_type="number",
            entity=entity,
            level=level,  # type: ignore[arg-type]
            score=score,
            reasons=[Reason("SMS_BURST", "sms_5m", 90, "5m", "p99.9", "90 SMS in 5m")],
            evidence={"sms_5m": 90.0},
            window=Window(iso(now - timedelta(minutes=5)), iso(now)),
            model_version="rules-1",
            raised_at=iso(now),
            number_enc=self.discloser.seal(phone, entity),
        )
        self.producer.send(self.settings.topic(ALERTS), key=alert.alert_id.encode(), value=encode(alert))
        return alert

    def flush(self) -> None:
        self.producer.flush(10)

    def close(self) -> None:
        self.producer.close(5)


@pytest.fixture(scope="module")
def scorer(kafka_bootstrap: str, api_prefix: str) -> Iterator[ScorerOutput]:
    out = ScorerOutput(kafka_bootstrap, api_prefix)
    yield out
    out.close()


def eventually(check: Any, timeout_s: float = 15.0, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met in {timeout_s}s (last: {last!r})")


def steady(check: Any, for_s: float, interval_s: float = 0.05) -> None:
    """Assert ``check()`` holds throughout ``for_s`` seconds (fails at the first moment it does
    not). For "nothing else happened": the window must be longer than the period of the
    mechanism that would make the bad thing happen."""
    deadline = time.monotonic() + for_s
    while True:
        result = check()
        assert result, f"stopped holding after {for_s - (deadline - time.monotonic()):.2f}s (last: {result!r})"
        if time.monotonic() >= deadline:
            return
        time.sleep(interval_s)
