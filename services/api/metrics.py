"""The API's Prometheus metrics (names from docs/metrics.md) and the ASGI middleware that
records requests.

The middleware is plain ASGI (no ``BaseHTTPMiddleware``) so it adds microseconds, not a task
per request. The route label is the route *template* (``/v1/webhooks/{webhook_id}``), never a
raw path, so no identifier can leak into a label; unmatched paths are labelled ``<unmatched>``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
MATERIALISE_LAG = _metric(Gauge, "fraudradar_api_materialise_lag", "records behind the topic end", ("topic",))
WEBHOOK_DELIVERIES = _metric(Counter, "fraudradar_webhook_deliveries_total", "webhook attempts", ("outcome",))
WEBHOOK_SECONDS = _metric(
    Histogram,
    "fraudradar_webhook_delivery_seconds",
    "latency of one delivery attempt",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONSUMER_RECORDS = _metric(
    Counter, "fraudradar_consumer_records_total", "records consumed", ("service", "topic")
)
CONSUMER_LAG = _metric(
    Gauge, "fraudradar_consumer_lag", "high watermark minus position", ("service", "topic", "partition")
)

_CORRELATOR = re.compile(rb"^[a-zA-Z0-9\-_:;./<>{}]{0,256}$")


class ApiMiddleware:
    """Records every request's route, status, partner and latency; echoes ``x-correlator``.

    The body-size limit (413) is FastAPI's own ``max_body_size``; its error goes through the
    common error handler like every other error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = [500]
        correlator = None
        for name, value in scope.get("headers", ()):
            if name == b"x-correlator":
                if _CORRELATOR.match(value):
                    correlator = value
                break

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                if correlator is not None:
                    message["headers"] = [*message.get("headers", []), (b"x-correlator", correlator)]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            state = scope.get("state") or {}
            partner = state.get("partner_id", "-") if isinstance(state, dict) else "-"
            method = scope.get("method", "-")
            REQUESTS.labels(template, method, str(status_holder[0]), partner).inc()
            REQUEST_SECONDS.labels(template, method).observe(time.perf_counter() - started)
