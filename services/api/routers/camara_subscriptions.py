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
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Path, Request, Response, Security
from pydantic import AwareDatetime, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

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
    E164_PATTERN,
    WEBHOOK_URL_PATTERN,
    WEBHOOK_URL_PATTERN_ANY_SCHEME,
    Absent,
    CamaraModel,
    _date_time_text,
    _drop_default,
    _no_explicit_null,
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


class InvalidProtocol(ApiError):
    status, code = 400, "INVALID_PROTOCOL"
    default_message = "Only HTTP is supported."


class InvalidCredential(ApiError):
    status, code = 400, "INVALID_CREDENTIAL"
    default_message = "Only Access token is supported."


class InvalidToken(ApiError):
    status, code = 400, "INVALID_TOKEN"
    default_message = "Only bearer token is supported."


class InvalidSink(ApiError):
    status, code = 400, "INVALID_SINK"
    default_message = "sink not valid for the specified protocol."


class SubscriptionQuota(ApiError):
    """The partner's cap on active subscriptions (a business quota: no Retry-After)."""

    status, code = 429, "QUOTA_EXCEEDED"
    default_message = "Out of resource quota."


MAX_EVENTS_LIMIT = 1_000_000  # published maximum of subscriptionMaxEvents (the spec sets none)
DateTimeText = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]
# sent as stored (RFC 3339, milliseconds, Z): a datetime field would re-render it in microseconds
DateTimeOut = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
EventType = Literal["org.camaraproject.sim-swap-subscriptions.v0.swapped"]
Status = Literal["ACTIVATION_REQUESTED", "ACTIVE", "EXPIRED", "INACTIVE", "DELETED"]


def _enum(*values: str) -> Any:
    def extra(schema: dict[str, Any]) -> None:
        schema["enum"] = list(values)

    return extra


def _access_token_required(schema: dict[str, Any]) -> None:
    # Only ACCESSTOKEN is taken, so its three fields are required in what is published; the
    # model itself takes the spec's other credential types to answer them INVALID_CREDENTIAL.
    schema["required"] = ["credentialType", "accessToken", "accessTokenExpiresUtc", "accessTokenType"]


def _phone_required(schema: dict[str, Any]) -> None:
    # Two-legged tokens only: the number cannot come from the token (422 MISSING_IDENTIFIER).
    schema["required"] = ["phoneNumber"]


class SinkCredential(CamaraModel):
    """How to authenticate at the sink: an access token sent as ``Authorization: Bearer``."""

    model_config = ConfigDict(json_schema_extra=_access_token_required)
    credentialType: Literal["PLAIN", "ACCESSTOKEN", "REFRESHTOKEN"] = Field(
        json_schema_extra=_enum("ACCESSTOKEN"),
        description="ACCESSTOKEN only (PLAIN and REFRESHTOKEN: 400 INVALID_CREDENTIAL)",
    )
    accessToken: Annotated[str, Field(min_length=1, max_length=4096)] | SkipJsonSchema[None] = Absent
    accessTokenExpiresUtc: DateTimeText | SkipJsonSchema[None] = Field(
        default=None,
        description=f"when the token expires; the subscription ends (ACCESS_TOKEN_EXPIRED) {TOKEN_LEAD_S:.0f} s before",
        json_schema_extra=_drop_default,
    )
    accessTokenType: Annotated[str, Field(json_schema_extra=_enum("bearer"))] | SkipJsonSchema[None] = Absent
    _not_null = field_validator("accessToken", "accessTokenExpiresUtc", "accessTokenType", mode="before")(
        _no_explicit_null
    )


class SubscriptionDetailIn(CamaraModel):
    model_config = ConfigDict(json_schema_extra=_phone_required)
    phoneNumber: Annotated[str, Field(pattern=E164_PATTERN)] | SkipJsonSchema[None] = Absent


class SubscriptionDetail(CamaraModel):
    phoneNumber: str | None = Field(default=None, pattern=E164_PATTERN)


class SubscriptionConfigIn(CamaraModel):
    subscriptionDetail: SubscriptionDetailIn
    subscriptionExpireTime: DateTimeText | SkipJsonSchema[None] = Field(
        default=None,
        description="must be in the future; later than this deployment's longest lifetime is "
        "shortened to it (expiresAt)",
        json_schema_extra=_drop_default,
    )
    subscriptionMaxEvents: Annotated[int, Field(ge=1, le=MAX_EVENTS_LIMIT, strict=True)] | SkipJsonSchema[None] = Absent
    _not_null = field_validator("subscriptionExpireTime", "subscriptionMaxEvents", mode="before")(_no_explicit_null)


class SubscriptionConfig(CamaraModel):
    subscriptionDetail: SubscriptionDetail
    subscriptionExpireTime: DateTimeOut | None = None
    subscriptionMaxEvents: int | None = None


class SubscriptionRequest(CamaraModel):
    """A SIM swap subscription request (CAMARA ``SubscriptionRequest``, protocol HTTP)."""

    protocol: Literal["HTTP", "MQTT3", "MQTT5", "AMQP", "NATS", "KAFKA"] = Field(
        json_schema_extra=_enum("HTTP"), description="HTTP only (the others: 400 INVALID_PROTOCOL)"
    )
    sink: str = Field(
        max_length=2048,
        json_schema_extra={"format": "uri", "pattern": WEBHOOK_URL_PATTERN},
        description="https URL whose host resolves to public addresses only (else 400 INVALID_SINK)",
    )
    sinkCredential: SinkCredential | SkipJsonSchema[None] = Absent
    types: list[EventType] = Field(min_length=1, max_length=1)
    config: SubscriptionConfigIn
    _not_null = field_validator("sinkCredential", mode="before")(_no_explicit_null)


class Subscription(CamaraModel):
    protocol: Literal["HTTP"]
    sink: str
    types: list[EventType]
    config: SubscriptionConfig
    id: str
    startsAt: DateTimeOut
    expiresAt: DateTimeOut
    status: Status


class NotificationData(CamaraModel):
    subscriptionId: str
    phoneNumber: str | None = Field(default=None, pattern=E164_PATTERN)
    terminationReason: (
        Literal[
            "MAX_EVENTS_REACHED",
            "NETWORK_TERMINATED",
            "SUBSCRIPTION_EXPIRED",
            "ACCESS_TOKEN_EXPIRED",
            "SUBSCRIPTION_DELETED",
        ]
        | None
    ) = Field(default=None, description="subscription-ended only")
    terminationDescription: str | None = Field(default=None, description="subscription-ended only")


class CloudEvent(CamaraModel):
    """A notification to the sink (``application/cloudevents+json``, with ``Authorization:
    Bearer <accessToken>`` when the subscription has a sink credential). ``id`` is the same
    for every attempt of one event, so the listener can drop repeats (delivery is at least once)."""

    id: str
    source: str = Field(json_schema_extra={"format": "uri-reference"})
    type: Literal[
        "org.camaraproject.sim-swap-subscriptions.v0.swapped",
        "org.camaraproject.sim-swap-subscriptions.v0.subscription-ended",
    ]
    specversion: Literal["1.0"]
    datacontenttype: Literal["application/json"]
    time: DateTimeOut
    data: NotificationData


callback_router = APIRouter()


@callback_router.post(
    "{$request.body#/sink}",
    status_code=204,
    response_class=Response,
    summary="Notification to the sink (implemented by the API consumer)",
)
def notifications_callback(body: CloudEvent) -> None:  # pragma: no cover - documents the callback only
    """The sink answers 2xx; anything else is retried with backoff (webhook delivery policy)."""


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
