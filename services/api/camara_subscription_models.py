"""The request, response and notification models of CAMARA SIM Swap Subscriptions 0.3.0 and its
specific errors (``routers.camara_subscriptions`` serves them): what the published schema says
this server takes, and the CloudEvent a sink receives."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from services.api.exceptions import (
    ApiError,
)
from services.api.schemas import (
    E164_PATTERN,
    WEBHOOK_URL_PATTERN,
    Absent,
    CamaraModel,
    _date_time_text,
    _drop_default,
    _no_explicit_null,
)
from services.api.subscriptions import TOKEN_LEAD_S


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
