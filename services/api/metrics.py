"""The API's Prometheus metrics (names from docs/metrics.md) and the ASGI middleware that
records requests.

The middleware is plain ASGI (no ``BaseHTTPMiddleware``) so it adds microseconds, not a task
per request. The route label is the route *template* (``/v1/webhooks/{webhook_id}``), never a
raw path, so no identifier can leak into a label; unmatched paths are labelled ``<unmatched>``.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

from fastapi import HTTPException
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import metrics as common_metrics

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _metric(kind: type[Any], name: str, doc: str, labels: tuple[str, ...] = (), **kw: Any) -> Any:
    """Create a metric once per process (several apps share it in tests; other services may
    have registered the shared consumer metrics already)."""
    existing = REGISTRY._names_to_collectors.get(name)
    if existing is None and kind is Counter:
        existing = REGISTRY._names_to_collectors.get(name + "_total")
    if existing is not None:
        return existing
    return kind(name, doc, labels, **kw)


REQUESTS = _metric(
    Counter, "fraudradar_api_requests_total", "API requests", ("route", "method", "status", "partner")
)
REQUEST_SECONDS = _metric(
    Histogram,
    "fraudradar_api_request_duration_seconds",
    "API request latency",
    ("route", "method"),
    buckets=_LATENCY_BUCKETS,
)
LOOKUPS = _metric(Counter, "fraudradar_api_lookups_total", "entities looked up", ("partner", "kind"))
RATE_LIMITED = _metric(
    Counter, "fraudradar_api_rate_limited_total", "requests refused with 429", ("partner", "limit")
)
BUDGET_RATIO = _metric(
    Gauge,
    "fraudradar_api_lookup_budget_used_ratio",
    "distinct numbers looked up this hour / budget",
    ("partner",),
)
CONNECTIONS_REFUSED = _metric(
    Counter,
    "fraudradar_api_connections_refused_total",
    "connections closed by the server limits (headers too large, head or body too slow)",
    ("reason",),
)
MATERIALISE_LAG = _metric(Gauge, "fraudradar_api_materialise_lag", "records behind the topic end", ("topic",))
WEBHOOK_DELIVERIES = _metric(Counter, "fraudradar_webhook_deliveries_total", "webhook attempts", ("outcome",))
WEBHOOK_SECONDS = _metric(
    Histogram,
    "fraudradar_webhook_delivery_seconds",
    "latency of one delivery attempt",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
AUDIT_RECORDS = _metric(
    Counter,
    "fraudradar_api_audit_records_total",
    "audit records: acked by Kafka, failed attempts (sent again), dropped (lost)",
    ("outcome",),
)
AUDIT_ACKED = AUDIT_RECORDS.labels("acked")
AUDIT_FAILED = AUDIT_RECORDS.labels("failed")
AUDIT_DROPPED = AUDIT_RECORDS.labels("dropped")
AUDIT_UNACKED_SECONDS = _metric(
    Gauge,
    "fraudradar_api_audit_unacked_seconds",
    "seconds audit records have waited without any acknowledgement (0 when none wait)",
)
CONSUMER_RECORDS = common_metrics.CONSUMER_RECORDS
CONSUMER_LAG = common_metrics.CONSUMER_LAG

_CORRELATOR = re.compile(rb"^[a-zA-Z0-9\-_:;./<>{}]{0,256}$")


class ApiMiddleware:
    """Records every request's route, status, partner and latency; echoes ``x-correlator``.

    Bodies above ``max_body_bytes`` answer 413: at once when ``content-length`` says so, else
    when the streamed body passes the limit (raised as an HTTP error FastAPI hands to the
    common error handler).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = [500]
        correlator = None
        bad_correlator = False
        declared = 0
        for name, value in scope.get("headers", ()):
            if name == b"x-correlator":
                if _CORRELATOR.match(value):
                    correlator = value
                    scope.setdefault("state", {})["correlator"] = value.decode()
                else:
                    bad_correlator = True
            elif name == b"content-length":
                declared = int(value) if value.isdigit() else self.max_body_bytes + 1
        limit = self.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, "Request body is too large.")
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                if correlator is not None:
                    message["headers"] = [*message.get("headers", []), (b"x-correlator", correlator)]
            await send(message)

        try:
            if declared > limit:
                await _send_413(send, correlator)
                status_holder[0] = 413
            elif bad_correlator:
                await _send_error(send, 400, _BAD_CORRELATOR)
                status_holder[0] = 400
            else:
                await self.app(scope, limited_receive, tracking_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            state = scope.get("state") or {}
            partner = state.get("partner_id", "-") if isinstance(state, dict) else "-"
            method = scope.get("method", "-")
            _request_counter(template, method, status_holder[0], partner).inc()
            _latency(template, method).observe(time.perf_counter() - started)


_TOO_LARGE = b'{"status":413,"code":"PAYLOAD_TOO_LARGE","message":"Request body is too large."}'
_BAD_CORRELATOR = (
    b'{"status":400,"code":"INVALID_ARGUMENT","message":"x-correlator does not match its pattern."}'
)


@functools.lru_cache(maxsize=4096)
def _request_counter(route: str, method: str, status: int, partner: str) -> Any:
    """Label children are cached: ``labels()`` costs microseconds on every request otherwise."""
    return REQUESTS.labels(route, method, str(status), partner)


@functools.lru_cache(maxsize=4096)
def lookups_counter(partner: str, kind: str) -> Any:
    """``fraudradar_api_lookups_total`` child for one partner and kind (cached)."""
    return LOOKUPS.labels(partner, kind)


@functools.lru_cache(maxsize=1024)
def _latency(route: str, method: str) -> Any:
    return REQUEST_SECONDS.labels(route, method)


async def _send_error(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_413(send: Send, correlator: bytes | None) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_TOO_LARGE)).encode()),
        (b"connection", b"close"),
    ]
    if correlator is not None:
        headers.append((b"x-correlator", correlator))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": _TOO_LARGE})
