"""The FastAPI application: routers, error handlers, middleware, lifespan.

``create_app`` builds routes only; everything that needs configuration files or Kafka
(partners, token keys, the materialiser) starts in the lifespan, so printing the OpenAPI
document needs neither.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.api import routers
from services.api.config import ApiSettings
from services.api.deps import CORRELATOR_PATTERN, PURPOSES
from services.api.errors import install_error_handlers
from services.api.identifiers import EntityResolver
from services.api.limits import AuthFailures, AuthLanes
from services.api.metrics import ApiMiddleware
from services.api.partners import PartnerRegistry
from services.api.routers import (
    alerts,
    call_state,
    camara,
    camara_line,
    camara_subscriptions,
    oauth,
    operator,
    ops,
    reports,
    risk,
    watchlist,
    webhooks,
)
from services.api.schemas import WEBHOOK_URL_PATTERN, WEBHOOK_URL_PATTERN_ANY_SCHEME
from services.api.service import ApiService
from services.api.tokens import TokenService
from services.common.exceptions import ConfigError
from services.common.http import Health, ServiceHttp

log = logging.getLogger("fraudradar.api")
API_VERSION = "1.0.0"
DESCRIPTION = """\
Risk of phone numbers and devices from telecom traffic metadata, for banks, platforms and
telcos. OAuth2 client credentials (`/oauth2/token`), one declared purpose per token; phone
numbers travel only in request bodies; every lookup is audited. Errors are
`{status, code, message}` with CAMARA codes. See docs/bank-guide.md.
"""
_ = routers  # the package docstring names the layout


def build_runtime(app: FastAPI, settings: ApiSettings) -> ApiService:
    if not settings.partners_file:
        raise ConfigError("FRAUDRADAR_PARTNERS_FILE is not set (see services/api/partners.example.yaml)")
    partners = PartnerRegistry.from_file(settings.partners_file)
    tokens = TokenService(
        partners,
        signing_key_file=settings.signing_key_file,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl_s=settings.token_ttl_s,
        token_endpoint=settings.public_url.rstrip("/") + "/oauth2/token",
        previous_key_file=settings.previous_signing_key_file,
        jwks_url=settings.jwks_url,
        external_issuer=settings.external_issuer,
    )
    try:
        discloser = settings.discloser()
    except ConfigError:
        discloser = None
        log.warning("no disclosure key: webhooks cannot be registered and no number is disclosed")
    resolver = EntityResolver(settings.pseudonymizer(), settings.default_region)
    service = ApiService(settings, partners, resolver=resolver, discloser=discloser)
    tokens.assertion_used_elsewhere = service.assertion_used
    tokens.on_assertion_used = service.record_assertion
    app.state.tokens = tokens
    app.state.auth_failures = AuthFailures(
        burst=settings.auth_failures_burst, per_minute=settings.auth_failures_per_minute
    )
    app.state.auth_lanes = AuthLanes()
    app.state.limiter = service.limiter
    app.state.resolver = service.resolver
    app.state.service = service
    return service


class _ApiHealth(Health):
    """The API's state as the common side door reports it: live while the process answers,
    ready while caught up and audit records are acknowledged (what ``/readyz`` tells)."""

    def __init__(self, service: ApiService) -> None:
        super().__init__()
        self._service = service

    def live(self) -> bool:
        return True

    @property  # type: ignore[override]
    def ready(self) -> bool:
        return self._service.ready

    @ready.setter
    def ready(self, value: bool) -> None:
        pass  # derived from the service, never set

    @property  # type: ignore[override]
    def reason(self) -> str:
        s = self._service
        return "ready" if s.ready else ("audit-stalled" if s.audit_stalled else "catching-up")

    @reason.setter
    def reason(self, value: str) -> None:
        pass


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ApiSettings = app.state.settings
    service = build_runtime(app, settings)
    # /metrics, /healthz, /readyz on their own port (FRAUDRADAR_HTTP_PORT) like every service:
    # the partner port (and an Ingress in front of it) never serves the metrics, which name
    # every partner and its usage.
    ops = None
    if settings.http_port == settings.api_port:
        app.state.ops_port = settings.api_port  # one port for everything (create_app)
    else:
        ops = ServiceHttp(settings.http_host, settings.http_port, _ApiHealth(service)).start()
        app.state.ops_port = ops.port
    await service.start()
    try:
        yield
    finally:
        await service.stop()
        if ops is not None:
            ops.stop()
        app.state.auth_lanes.close()


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    app = FastAPI(
        title="fraudradar partner API",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # no slash redirects: they would build an absolute URL from the request's Host header
        redirect_slashes=False,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(ApiMiddleware, max_body_bytes=settings.max_body_bytes)
    # Route matching walks the routers in this order: the lookups (most of the traffic) first.
    for module in (risk, oauth, alerts, watchlist, webhooks, reports, operator, ops):
        app.include_router(module.router)
    if settings.http_port == settings.api_port:
        # FRAUDRADAR_HTTP_PORT set to the partner port (a local demo on one port): /metrics here
        app.include_router(ops.metrics_router)
    app.include_router(camara.sim_router)
    app.include_router(camara.device_router)
    app.include_router(camara_subscriptions.router)
    app.include_router(camara_line.forwarding_router)
    app.include_router(camara_line.tenure_router)
    app.include_router(camara_line.recycling_router)
    app.include_router(call_state.router)
    app.include_router(call_state.announce_router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document minus its 422 validation answers: this API answers 400 INVALID_ARGUMENT."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            ref = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if ref.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
    correlator = {
        "name": "x-correlator",
        "in": "header",
        "required": False,
        "description": "Correlation id, echoed in the response and kept in the audit trail",
        "schema": {"type": "string", "pattern": CORRELATOR_PATTERN},
    }
    for path, path_item in schema.get("paths", {}).items():
        if path.startswith("/oauth2/"):
            continue
        for operation in path_item.values():
            operation.setdefault("parameters", []).append(dict(correlator))
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            scopes = [sc for req in operation.get("security", []) for sc in req.get("oauth2", [])]
            if scopes:
                served = frozenset.intersection(*(PURPOSES[sc] for sc in scopes))
                operation["x-purposes"] = sorted(served)
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    # CAMARA allows maxAge up to 2400 h; this deployment discloses its monitored period only,
    # so that is the published maximum (above it: 400 OUT_OF_RANGE, as the specs prescribe).
    settings: ApiSettings = app.state.settings
    max_age = components.get("CreateCheckSwap", {}).get("properties", {}).get("maxAge")
    if max_age is not None:
        max_age["maximum"] = min(2400, settings.swap_monitored_days * 24)
        max_age["default"] = min(240, max_age["maximum"])
    # the deployment's longest call-state window is the published maximum (above it: 400 OUT_OF_RANGE)
    window = components.get("CallStateCheck", {}).get("properties", {}).get("windowMinutes")
    if window is not None:
        window["maximum"] = settings.call_window_max_min
        window["default"] = min(15, settings.call_window_max_min)
    url = components.get("WebhookIn", {}).get("properties", {}).get("url")
    if url is not None:
        url["pattern"] = WEBHOOK_URL_PATTERN_ANY_SCHEME if settings.webhook_allow_http else WEBHOOK_URL_PATTERN
    camara_subscriptions.adjust_openapi(schema, settings.webhook_allow_http)
    app.openapi_schema = schema
    return schema
