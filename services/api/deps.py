"""Dependencies every route draws on: the service, the authenticated partner, limits.

The ``*Auth`` aliases below are ``Annotated`` dependencies that (1) reads the bearer token,
(2) verifies it, (3) checks the scope, (4) books the request against the partner's rate
limit and quota. It also declares the OAuth2 scope in the OpenAPI document, so the published
contract lists exactly what each operation needs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from starlette.requests import HTTPConnection

from services.api.exceptions import PermissionDenied, Unauthenticated, Unavailable
from services.api.identifiers import EntityResolver
from services.api.limits import Limiter
from services.api.partners import SCOPES
from services.api.service import ApiService
from services.api.tokens import Principal, TokenService

# An umbrella scope (CAMARA style) that also grants the narrower one.
_UMBRELLA = {
    "sim-swap:check": "sim-swap",
    "sim-swap:retrieve-date": "sim-swap",
    "device-swap:check": "device-swap",
    "device-swap:retrieve-date": "device-swap",
}
CORRELATOR_PATTERN = r"^[a-zA-Z0-9-_:;.\/<>{}]{0,256}$"


class BearerClientCredentials(OAuth2):
    """OAuth2 client-credentials bearer tokens; a missing token is our own 401, not FastAPI's."""

    def __init__(self) -> None:
        flows = OAuthFlows(
            clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth2/token", scopes=SCOPES)
        )
        super().__init__(
            flows=flows,
            scheme_name="oauth2",
            auto_error=False,
            description="OAuth2 client credentials; one declared purpose per token",
        )

    async def __call__(self, request: HTTPConnection) -> str | None:
        header = request.headers.get("authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()


bearer = BearerClientCredentials()


async def get_service(request: Request) -> ApiService:
    service: ApiService = request.app.state.service
    return service


async def get_tokens(request: Request) -> TokenService:
    tokens: TokenService = request.app.state.tokens
    return tokens


async def get_limiter(request: Request) -> Limiter:
    limiter: Limiter = request.app.state.limiter
    return limiter


async def get_resolver(request: Request) -> EntityResolver:
    resolver: EntityResolver = request.app.state.resolver
    return resolver


ServiceDep = Annotated[ApiService, Depends(get_service)]
TokensDep = Annotated[TokenService, Depends(get_tokens)]
LimiterDep = Annotated[Limiter, Depends(get_limiter)]
ResolverDep = Annotated[EntityResolver, Depends(get_resolver)]


def correlator_of(request: Request) -> str | None:
    """The request's ``x-correlator`` (checked against its pattern by the middleware, which
    answers 400 when it does not match; the OpenAPI document lists it on every operation)."""
    value: str | None = getattr(request.state, "correlator", None)
    return value


async def authorize(
    security_scopes: SecurityScopes,
    request: Request,
    token: Annotated[str | None, Depends(bearer)],
) -> Principal:
    if token is None:
        raise Unauthenticated("Missing bearer access token.")
    state = request.app.state
    tokens: TokenService = state.tokens
    principal = tokens.verify(token)
    request.state.partner_id = principal.partner.id
    for scope in security_scopes.scopes:
        if scope not in principal.scopes and _UMBRELLA.get(scope) not in principal.scopes:
            raise PermissionDenied(f"This operation needs the scope '{scope}'.")
    limiter: Limiter = state.limiter
    limiter.admit(principal.partner)
    return principal


# One alias per scope: the dependency checks it and OpenAPI lists it on the operation.
RiskNumbersAuth = Annotated[Principal, Security(authorize, scopes=["risk:numbers"])]
RiskDevicesAuth = Annotated[Principal, Security(authorize, scopes=["risk:devices"])]
AlertsAuth = Annotated[Principal, Security(authorize, scopes=["alerts:read"])]
WatchlistAuth = Annotated[Principal, Security(authorize, scopes=["watchlist"])]
WebhooksAuth = Annotated[Principal, Security(authorize, scopes=["webhooks"])]
ReportsAuth = Annotated[Principal, Security(authorize, scopes=["reports:write"])]
ContestsAuth = Annotated[Principal, Security(authorize, scopes=["contests:write"])]
OverridesAuth = Annotated[Principal, Security(authorize, scopes=["overrides"])]
AuditAuth = Annotated[Principal, Security(authorize, scopes=["audit:read"])]
SimSwapCheckAuth = Annotated[Principal, Security(authorize, scopes=["sim-swap:check"])]
SimSwapDateAuth = Annotated[Principal, Security(authorize, scopes=["sim-swap:retrieve-date"])]
DeviceSwapCheckAuth = Annotated[Principal, Security(authorize, scopes=["device-swap:check"])]
DeviceSwapDateAuth = Annotated[Principal, Security(authorize, scopes=["device-swap:retrieve-date"])]


async def require_ready(service: ServiceDep) -> None:
    if not service.ready:
        raise Unavailable()


ReadyDep = Depends(require_ready)
