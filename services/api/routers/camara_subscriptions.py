"""CAMARA SIM Swap Subscriptions 0.3.0 (``/sim-swap-subscriptions/v0.3``): create, list, get
and delete subscriptions to SIM swaps of a number; notifications are CloudEvents delivered to
the sink (services/api/subscriptions.py).

Two-legged tokens only, so ``config.subscriptionDetail.phoneNumber`` is required (422
MISSING_IDENTIFIER without it) and every response carries it. The published schema says what
this server takes: protocol ``HTTP`` only (the spec's other protocols answer 400
INVALID_PROTOCOL), sink credential ``ACCESSTOKEN`` of type ``bearer`` only (PLAIN and
REFRESHTOKEN answer 400 INVALID_CREDENTIAL, another token type 400 INVALID_TOKEN, as the spec
says). A sink that is not https (http only where ``FRAUDRADAR_WEBHOOK_ALLOW_HTTP`` allows it) or
whose host does not resolve to public addresses only is 400 INVALID_SINK; a number impossible in
the numbering plan is 422 SERVICE_NOT_APPLICABLE (create lists no 404; the spec's 422 for "not
applicable for the provided identifier"). ``sinkCredential`` is never in a response.

A subscription discloses a future swap of the number, so creating one is audited and books the
number against the partner's hourly lookup budget like a lookup; a partner has at most
``FRAUDRADAR_SIM_SWAP_SUBSCRIPTIONS_MAX`` active ones (429 QUOTA_EXCEEDED beyond).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Request, Response, Security

from services.api.camara_subscription_models import (
    InvalidCredential,
    InvalidProtocol,
    InvalidSink,
    InvalidToken,
    Subscription,
    SubscriptionQuota,
    SubscriptionRequest,
    callback_router,
)
from services.api.deps import ServiceDep, correlator_of, partner_auth
from services.api.errors import ERRORS_COMMON, _doc
from services.api.exceptions import (
    ApiError,
    InvalidArgument,
    MissingIdentifier,
    NotFound,
    OutOfRange,
    ServiceNotApplicable,
    Unavailable,
)
from services.api.partner_state import SimSwapSubscription
from services.api.schemas import (
    WEBHOOK_URL_PATTERN,
    WEBHOOK_URL_PATTERN_ANY_SCHEME,
)
from services.api.store import parse_time
from services.api.subscriptions import BASE_PATH, CREATE_SCOPE, SWAPPED, TOKEN_LEAD_S, token_aad
from services.api.tokens import Principal
from services.api.webhooks import UrlPolicy

SCOPE_CREATE = CREATE_SCOPE
SCOPE_READ = "sim-swap-subscriptions:read"
SCOPE_DELETE = "sim-swap-subscriptions:delete"
CreateAuth = Annotated[Principal, Security(partner_auth, scopes=[SCOPE_CREATE])]
ReadAuth = Annotated[Principal, Security(partner_auth, scopes=[SCOPE_READ])]
DeleteAuth = Annotated[Principal, Security(partner_auth, scopes=[SCOPE_DELETE])]



_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS_COMMON,
    400: _doc(
        "INVALID_ARGUMENT, INVALID_PROTOCOL (not HTTP), INVALID_CREDENTIAL (not ACCESSTOKEN), "
        "INVALID_TOKEN (not bearer), INVALID_SINK (not https, or its host not public)"
    ),
    404: _doc("NOT_FOUND: no such subscription of yours"),
    422: _doc(
        "MISSING_IDENTIFIER: phoneNumber is required; SERVICE_NOT_APPLICABLE: the number is "
        "impossible in the numbering plan"
    ),
    429: _doc("Rate limit, lookup budget, or QUOTA_EXCEEDED: too many active subscriptions"),
}
router = APIRouter(prefix=BASE_PATH, tags=["CAMARA SIM Swap Subscriptions"], responses=_RESPONSES)
SubscriptionId = Annotated[str, Path(min_length=1, max_length=64)]


def _out(service: ServiceDep, sub: SimSwapSubscription) -> dict[str, Any]:
    # the number is left out only if its sealed text no longer opens (disclosure key rotated)
    config: dict[str, Any] = {"subscriptionDetail": {"phoneNumber": service.disclose(sub.number_enc, sub.entity)}}
    if sub.requested_expire_time is not None:
        config["subscriptionExpireTime"] = sub.requested_expire_time
    if sub.max_events is not None:
        config["subscriptionMaxEvents"] = sub.max_events
    return {
        "protocol": "HTTP",
        "sink": sub.sink,
        "types": [SWAPPED],
        "config": config,
        "id": sub.subscription_id,
        "startsAt": sub.created_at,
        "expiresAt": sub.expires_at,
        "status": "ACTIVE",
    }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc(at: datetime | None, name: str) -> datetime | None:
    """``at`` in UTC; a time that is not representable there (year 9999 with a negative
    offset) is 400 OUT_OF_RANGE rather than an overflow."""
    if at is None:
        return None
    try:
        return at.astimezone(UTC)
    except OverflowError as exc:
        raise OutOfRange(f"{name} is out of range.") from exc


async def _check_sink(service: ServiceDep, sink: str) -> None:
    policy = UrlPolicy(service.settings.webhook_allow_http, service.settings.webhook_allow_private)
    try:
        await policy.resolve(sink)
    except ApiError as exc:
        raise InvalidSink(f"sink not valid for the specified protocol: {exc.message}") from exc


@router.post(
    "/subscriptions",
    response_model=Subscription,
    response_model_exclude_none=True,
    status_code=201,
    operation_id="createSimSwapSubscription",
    summary="Create a sim swap event subscription for a phone number",
    callbacks=callback_router.routes,
)
async def create_subscription(
    *, body: SubscriptionRequest, principal: CreateAuth, service: ServiceDep, request: Request
) -> Any:
    now = datetime.fromtimestamp(service.clock(), UTC)
    requested = _utc(body.config.subscriptionExpireTime, "config.subscriptionExpireTime")
    if body.protocol != "HTTP":
        raise InvalidProtocol()
    phone = body.config.subscriptionDetail.phoneNumber
    if phone is None:
        raise MissingIdentifier("config.subscriptionDetail.phoneNumber is required with a two-legged access token.")
    credential = body.sinkCredential
    if credential is not None:
        if credential.credentialType != "ACCESSTOKEN":
            raise InvalidCredential()
        if credential.accessTokenType != "bearer":
            raise InvalidToken()
        if credential.accessToken is None or credential.accessTokenExpiresUtc is None:
            raise InvalidArgument("sinkCredential needs accessToken, accessTokenExpiresUtc and accessTokenType.")
        token_expires = _utc(credential.accessTokenExpiresUtc, "sinkCredential.accessTokenExpiresUtc")
        if token_expires is None or token_expires <= now + timedelta(seconds=TOKEN_LEAD_S):
            raise InvalidArgument("sinkCredential.accessTokenExpiresUtc must be in the future.")
    if requested is not None and requested <= now:
        raise InvalidArgument("config.subscriptionExpireTime must be in the future.")
    await _check_sink(service, body.sink)
    if service.discloser is None:
        raise Unavailable("Subscriptions need the disclosure key, which this deployment lacks.")
    service.require_lookup_ready()
    if not service.resolver.is_possible(phone):
        raise ServiceNotApplicable("phoneNumber is not a possible number in its country's numbering plan.")
    partner = principal.partner
    subs = service.sim_swap_subs
    if len(subs.by_partner.get(partner.id, {})) >= service.settings.sim_swap_subscriptions_max:
        raise SubscriptionQuota(
            f"At most {service.settings.sim_swap_subscriptions_max} active subscriptions per partner."
        )
    pseudonym = service.resolver.number(phone)
    service.limiter.spend_budget(partner, (pseudonym,))
    subscription_id = str(uuid.uuid4())
    longest = now + timedelta(days=service.settings.sim_swap_subscription_max_days)
    expires = min(requested, longest) if requested is not None else longest
    risk = service.risk.get(f"number:{pseudonym}")
    last_swap = _iso(now)
    if risk is not None and risk.sim_changed_at is not None and parse_time(risk.sim_changed_at) > now.timestamp():
        last_swap = risk.sim_changed_at  # a change dated after now is not a new swap either
    record = SimSwapSubscription(
        partner=partner.id,
        subscription_id=subscription_id,
        purpose=principal.purpose,
        entity=pseudonym,
        number_enc=service.discloser.seal(phone, pseudonym),
        sink=body.sink,
        created_at=_iso(now),
        expires_at=_iso(expires),
        last_swap_at=last_swap,
        token_enc=(
            service.discloser.seal(credential.accessToken, token_aad(subscription_id))
            if credential is not None and credential.accessToken is not None
            else None
        ),
        token_expires_at=(
            _iso(credential.accessTokenExpiresUtc)
            if credential is not None and credential.accessTokenExpiresUtc is not None
            else None
        ),
        requested_expire_time=_iso(requested) if requested is not None else None,
        max_events=body.config.subscriptionMaxEvents,
    )
    service.audit(principal, "sim-swap-subscriptions:create", "number", pseudonym, "subscribed", correlator_of(request))
    await service.put_state(record)
    return _out(service, record)


@router.get(
    "/subscriptions",
    response_model=list[Subscription],
    response_model_exclude_none=True,
    operation_id="retrieveSubscriptionList",
    summary="Retrieve a list of sim swap event subscription",
)
async def list_subscriptions(*, principal: ReadAuth, service: ServiceDep) -> Any:
    return [_out(service, sub) for sub in service.sim_swap_subs.active_of(principal.partner.id)]


@router.get(
    "/subscriptions/{subscriptionId}",
    response_model=Subscription,
    response_model_exclude_none=True,
    operation_id="retrieveSubscription",
    summary="Retrieve a sim swap event subscription for a phone number",
)
async def get_subscription(*, subscriptionId: SubscriptionId, principal: ReadAuth, service: ServiceDep) -> Any:
    sub = service.sim_swap_subs.get(principal.partner.id, subscriptionId)
    if sub is None:
        raise NotFound("No such subscription.")
    return _out(service, sub)


@router.delete(
    "/subscriptions/{subscriptionId}",
    status_code=204,
    response_class=Response,
    operation_id="deleteSubscription",
    summary="Delete a sim swap event subscription",
)
async def delete_subscription(
    *, subscriptionId: SubscriptionId, principal: DeleteAuth, service: ServiceDep, request: Request
) -> Response:
    sub = service.sim_swap_subs.get(principal.partner.id, subscriptionId)
    if sub is None:
        raise NotFound("No such subscription.")
    ended = msgspec.structs.replace(sub, revision=sub.revision + 1, ended="SUBSCRIPTION_DELETED")
    service.audit(principal, "sim-swap-subscriptions:delete", "number", sub.entity, "deleted", correlator_of(request))
    await service.put_state(ended)
    return Response(status_code=204)


def adjust_openapi(schema: dict[str, Any], allow_http: bool) -> None:
    """The published sink pattern is the deployment's policy (http only where it is allowed):
    the webhooks' URL syntax, a subset of the spec's ``^https://.+$``."""
    sink = schema.get("components", {}).get("schemas", {}).get("SubscriptionRequest", {})
    prop = sink.get("properties", {}).get("sink")
    if prop is not None:
        prop["pattern"] = WEBHOOK_URL_PATTERN_ANY_SCHEME if allow_http else WEBHOOK_URL_PATTERN
    # The callback as the spec has it: a CloudEvent body, answered 204 (FastAPI would declare a
    # JSON body and a validation answer of the listener's).
    create = schema.get("paths", {}).get(BASE_PATH + "/subscriptions", {}).get("post", {})
    callbacks = create.get("callbacks", {}).pop("notifications_callback", None)
    if callbacks is not None:
        for item in callbacks.values():
            item["post"]["operationId"] = "postNotification"
            item["post"]["requestBody"] = {
                "required": True,
                "content": {"application/cloudevents+json": {"schema": {"$ref": "#/components/schemas/CloudEvent"}}},
            }
            item["post"]["responses"] = {"204": {"description": "Successful notification"}}
        create["callbacks"]["notifications"] = callbacks
