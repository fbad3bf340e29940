"""Dependencies every route draws on: the service, the authenticated partner, limits.

The ``*Auth`` aliases below are ``Annotated`` dependencies on ``partner_auth`` with the
operation's scope: one dependency authenticates, authorises and books the request (see
``PartnerAuth``), and declares the scope in the OpenAPI document, so the published contract
lists exactly what each operation needs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes

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
FRAUD, SERVICE = "dpv:FraudPreventionAndDetection", "dpv:ServiceProvision"
# The purposes each operation (by its scope) serves: a token declared for another purpose is
# refused (403) even when it holds the scope. Listed per operation in the OpenAPI document
# (``x-purposes``). Only managing webhook subscriptions and the operator's audit query also
# serve running the service; everything that discloses or labels risk is fraud prevention only.
PURPOSES: dict[str, frozenset[str]] = {scope: frozenset({FRAUD}) for scope in SCOPES}
PURPOSES["webhooks"] = frozenset({FRAUD, SERVICE})
PURPOSES["audit:read"] = frozenset({FRAUD, SERVICE})


class PartnerAuth(OAuth2):
    """OAuth2 client-credentials bearer tokens, resolved in one step.

    One dependency (1) reads the bearer token, (2) verifies it, (3) checks the operation's
    scopes and (4) books the request against the partner's rate limit and quota. It is the
    security scheme itself (an ``OAuth2`` instance), so ``Security(partner_auth, scopes=...)``
    also declares the scheme and the scopes of each operation in the OpenAPI document. One
    node instead of a chain of four (bearer -> authorize -> service/limiter) because FastAPI's
    dependency resolution costs several microseconds per node on every request.
    A missing token is our own 401 (CAMARA shape), not FastAPI's.
    """

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

    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> Principal:  # type: ignore[override]
        return authorize(request, security_scopes.scopes)


def authorize(request: Request, scopes: list[str]) -> Principal:
    """Authenticate, check ``scopes`` and book the request; what ``PartnerAuth`` resolves.

    The number and device lookup routes (most of the traffic) call it directly as their
    first statement, declaring the same OpenAPI security with ``scoped(...)``: that saves a
    dependency node per request. Every other route uses the ``*Auth`` dependencies."""
    header = request.headers.get("authorization")
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Missing bearer access token.")
    state = request.app.state
    tokens: TokenService = state.tokens
    principal = tokens.verify(token)
    request.scope.setdefault("state", {})["partner_id"] = principal.partner.id
    for scope in scopes:
        if scope not in principal.scopes and _UMBRELLA.get(scope) not in principal.scopes:
            raise PermissionDenied(f"This operation needs the scope '{scope}'.")
        if principal.purpose not in PURPOSES[scope]:
            raise PermissionDenied(
                f"This operation serves the purposes {', '.join(sorted(PURPOSES[scope]))}; "
                f"the token was issued for '{principal.purpose}'."
            )
    limiter: Limiter = state.limiter
    limiter.admit(principal.partner)
    return principal


partner_auth = PartnerAuth()


def scoped(*scopes: str) -> dict[str, Any]:
    """``openapi_extra`` of a route that calls ``authorize`` itself: the security requirement
    a ``Security(partner_auth, scopes=...)`` dependency would have declared."""
    return {"security": [{partner_auth.scheme_name: list(scopes)}]}


def service_of(request: Request) -> ApiService:
    """The service without a dependency node (the hot lookup routes use it)."""
    service: ApiService = request.app.state.service
    return service


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
    state = request.scope.get("state")
    return state.get("correlator") if state else None


# One alias per scope: the dependency checks it and OpenAPI lists it on the operation.
RiskNumbersAuth = Annotated[Principal, Security(partner_auth, scopes=["risk:numbers"])]
RiskDevicesAuth = Annotated[Principal, Security(partner_auth, scopes=["risk:devices"])]
AlertsAuth = Annotated[Principal, Security(partner_auth, scopes=["alerts:read"])]
WatchlistAuth = Annotated[Principal, Security(partner_auth, scopes=["watchlist"])]
WebhooksAuth = Annotated[Principal, Security(partner_auth, scopes=["webhooks"])]
ReportsAuth = Annotated[Principal, Security(partner_auth, scopes=["reports:write"])]
ContestsAuth = Annotated[Principal, Security(partner_auth, scopes=["contests:write"])]
OverridesAuth = Annotated[Principal, Security(partner_auth, scopes=["overrides"])]
AuditAuth = Annotated[Principal, Security(partner_auth, scopes=["audit:read"])]
SimSwapCheckAuth = Annotated[Principal, Security(partner_auth, scopes=["sim-swap:check"])]
SimSwapDateAuth = Annotated[Principal, Security(partner_auth, scopes=["sim-swap:retrieve-date"])]
DeviceSwapCheckAuth = Annotated[Principal, Security(partner_auth, scopes=["device-swap:check"])]
DeviceSwapDateAuth = Annotated[Principal, Security(partner_auth, scopes=["device-swap:retrieve-date"])]
UnconditionalForwardingAuth = Annotated[
    Principal, Security(partner_auth, scopes=["call-forwarding-signal:unconditional-call-forwardings:read"])
]
CallForwardingAuth = Annotated[
    Principal, Security(partner_auth, scopes=["call-forwarding-signal:call-forwardings:read"])
]
KycTenureAuth = Annotated[Principal, Security(partner_auth, scopes=["kyc-tenure:check-tenure"])]
NumberRecyclingAuth = Annotated[Principal, Security(partner_auth, scopes=["number-recycling:check"])]


async def require_ready(service: ServiceDep) -> None:
    if not service.caught_up:
        raise Unavailable()


ReadyDep = Depends(require_ready)
