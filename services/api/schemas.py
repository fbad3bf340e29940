"""Request and response bodies of the partner API (JSON in camelCase, as CAMARA does).

Optional answer fields are left out (not ``null``) when the partner's disclosure tier does not
include them or they do not apply; routes use ``response_model_exclude_none``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

# Every phone number a partner sends is E.164 with its leading '+', the CAMARA pattern. A
# number that matches it but is not a possible number by libphonenumber can never carry a
# signal (ingest dead-letters such numbers): it is answered as an unseen number.
E164_PATTERN = r"^\+[1-9][0-9]{4,14}$"
E164_DESCRIPTION = "E.164 with leading '+' (MSISDN), e.g. +31612345678"
PhoneText = Field(pattern=E164_PATTERN, description=E164_DESCRIPTION, examples=["+31612345678"])
ImeiPattern = r"^[0-9]{14,16}$"
E164 = Annotated[str, Field(pattern=E164_PATTERN, description=E164_DESCRIPTION)]
Imei = Annotated[str, Field(pattern=ImeiPattern, description="IMEI or IMEISV digits")]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# Optional, never null: left out means "not given"; the schema neither admits nor suggests null.
Absent = Field(default=None, json_schema_extra=_drop_default)
# A webhook target: https, a DNS name or IPv4 address, an optional port, a path and query of
# printable ASCII; no credentials, no fragment, no IP-literal in brackets. Whatever matches is
# well-formed; whether the host resolves to public addresses only is checked when registering
# (and before each delivery): refused with 403 PERMISSION_DENIED.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
_AFTER_SCHEME = rf"://(?:{_LABEL}\.)*{_LABEL}{_PORT}(?:[/?][\x21\x22\x24-\x7e]*)?$"
WEBHOOK_URL_PATTERN = "^https" + _AFTER_SCHEME
# What the model takes: http is refused by the URL policy (400) unless the deployment allows it
# (local demos and tests); the published document has the pattern of the deployment's policy.
WEBHOOK_URL_PATTERN_ANY_SCHEME = "^https?" + _AFTER_SCHEME

# "Exactly one of phoneNumber and imei", as the JSON schema says it.
_ONE_ENTITY: dict[str, Any] = {"oneOf": [{"required": ["phoneNumber"]}, {"required": ["imei"]}]}


def _date_time_text(value: object) -> object:
    """A date-time is RFC 3339 text (pydantic would also take epoch numbers the schema does not)."""
    if value is not None and not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


def _no_explicit_null(value: object) -> object:
    """An optional field is either left out or has a value (the schema does not admit null)."""
    if value is None:
        raise ValueError("must not be null (leave the field out instead)")
    return value
Level = Literal["none", "low", "medium", "high", "critical"]
FlagLevel = Literal["low", "medium", "high", "critical"]
EventType = Literal["alert.raised", "risk.changed", "call.risky", "call.cli_spoofed"]


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class NumberLookup(Model):
    phone_number: str = PhoneText


class NumberBatchLookup(Model):
    phone_numbers: list[E164] = Field(min_length=1, max_length=100, description="at most 100 numbers")


class DeviceLookup(Model):
    imei: str = Field(pattern=ImeiPattern, description="IMEI or IMEISV digits", examples=["35209900176148"])


class ReasonOut(Model):
    code: str
    text: str
    feature: str | None = None
    value: float | None = None
    window: str | None = None
    rarity: str | None = None


class RiskAnswer(Model):
    """``signal: false`` with ``level: none`` is the whole answer for any number without a flag,
    whether it was ever seen or not."""

    signal: bool
    level: Level
    score: int | None = Field(default=None, ge=0, le=100)
    reasons: list[ReasonOut] | None = None
    first_flagged_at: str | None = None
    updated_at: str | None = None
    expires_at: str | None = None
    model_version: str | None = None
    campaign_id: str | None = None
    sim_changed_at: str | None = None
    device_changed_at: str | None = None


class BatchItem(Model):
    phone_number: str
    result: RiskAnswer


class BatchAnswer(Model):
    results: list[BatchItem]


class WindowOut(Model):
    start: str
    end: str


class AlertOut(Model):
    alert_id: str
    entity_type: Literal["number", "device"]
    subject_ref: str = Field(
        description="stable per-partner reference of the entity (not linkable across partners)"
    )
    level: Level
    raised_at: str
    watch_ids: list[str] | None = None
    phone_number: str | None = Field(
        default=None, description="only for partners with disclosure tier 'full'"
    )
    score: int | None = None
    model_version: str | None = None
    window: WindowOut | None = None
    reasons: list[ReasonOut] | None = None
    campaign_id: str | None = None
    evidence: dict[str, float] | None = None


class AlertPage(Model):
    alerts: list[AlertOut]
    next_cursor: str = Field(description="pass as ?cursor= to continue; also valid when alerts is empty")


class WatchEntryIn(Model):
    phone_number: str = PhoneText
    reference: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:/-]*$",
        description="your own reference (never the number itself)",
    )


class WatchEntryOut(Model):
    id: str
    entity_type: Literal["number", "device"]
    created_at: str
    reference: str | None = None


class WatchEntryList(Model):
    entries: list[WatchEntryOut]
    next_cursor: str | None = None


class WebhookIn(Model):
    url: str = Field(
        max_length=2048,
        pattern=WEBHOOK_URL_PATTERN_ANY_SCHEME,
        description="https URL; its host must resolve to public addresses only (else 403)",
        examples=["https://hooks.example.com/fraudradar"],
    )
    events: list[EventType] = Field(min_length=1, max_length=2)
    description: str | None = Field(default=None, max_length=200)


class WebhookOut(Model):
    id: str
    url: str
    events: list[EventType]
    created_at: str
    description: str | None = None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Standard Webhooks signing secret (whsec_...); shown only once")


class WebhookList(Model):
    webhooks: list[WebhookOut]


class ReportIn(Model):
    """Exactly one of ``phoneNumber`` and ``imei``."""

    model_config = ConfigDict(json_schema_extra=_ONE_ENTITY)
    phone_number: E164 | SkipJsonSchema[None] = Absent
    imei: Imei | SkipJsonSchema[None] = Absent
    label: Literal["confirmed_fraud", "false_positive"]
    _not_null = field_validator("phone_number", "imei", mode="before")(_no_explicit_null)
    alert_id: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    note: str | None = Field(default=None, max_length=500)


class ReportAccepted(Model):
    report_id: str


class OverrideIn(Model):
    """Exactly one of ``phoneNumber`` and ``imei``; ``level`` with ``pin`` and only with it."""

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                _ONE_ENTITY,
                {
                    "oneOf": [
                        {"properties": {"action": {"const": "pin"}}, "required": ["level"]},
                        {"properties": {"action": {"const": "clear"}}, "not": {"required": ["level"]}},
                    ]
                },
            ]
        }
    )
    phone_number: E164 | SkipJsonSchema[None] = Absent
    imei: Imei | SkipJsonSchema[None] = Absent
    action: Literal["clear", "pin"]
    level: FlagLevel | SkipJsonSchema[None] = Field(
        default=None, description="required for 'pin', not allowed for 'clear'", json_schema_extra=_drop_default
    )
    _not_null = field_validator("phone_number", "imei", "level", mode="before")(_no_explicit_null)
    reason: str = Field(min_length=3, max_length=500)
    expires_in_hours: int = Field(default=168, ge=1, le=720)


class OverrideOut(Model):
    id: str
    entity_type: Literal["number", "device"]
    action: Literal["clear", "pin"]
    reason: str
    created_by: str
    created_at: str
    expires_at: str
    level: FlagLevel | None = None


class OverrideList(Model):
    overrides: list[OverrideOut]


class ContestIn(Model):
    phone_number: str = PhoneText
    reason: str = Field(min_length=3, max_length=500)


class ContestOut(Model):
    id: str
    status: Literal["open", "upheld", "rejected"]
    reason: str
    created_at: str
    partner: str | None = Field(default=None, description="shown to operators")
    resolution: str | None = None
    resolved_at: str | None = None


class ContestList(Model):
    contests: list[ContestOut] = Field(description="in contest id order")
    next_cursor: str | None = Field(
        default=None, description="pass as cursor for the next page; absent at the end"
    )


class ContestResolution(Model):
    decision: Literal["upheld", "rejected"]
    resolution: str = Field(min_length=3, max_length=500)
    expires_in_hours: int = Field(
        default=168, ge=1, le=720, description="lifetime of the clearing override when upheld"
    )


class AuditQuery(Model):
    """Exactly one of ``phoneNumber`` and ``imei``; ``since`` after ``until`` is an empty window."""

    model_config = ConfigDict(json_schema_extra=_ONE_ENTITY)
    phone_number: E164 | SkipJsonSchema[None] = Absent
    imei: Imei | SkipJsonSchema[None] = Absent
    since: AwareDatetime | None = Field(default=None, description="default: 30 days ago")
    until: AwareDatetime | None = Field(default=None, description="default: now")
    _not_null = field_validator("phone_number", "imei", mode="before")(_no_explicit_null)
    _rfc3339 = field_validator("since", "until", mode="before")(_date_time_text)
    limit: int = Field(default=100, ge=1, le=1000)


class AuditEntry(Model):
    at: str
    partner: str
    purpose: str
    action: str
    answer_level: str
    correlator: str | None = None


class AuditAnswer(Model):
    records: list[AuditEntry]
    complete: bool = Field(description="false when the scan stopped at its time budget or the limit")


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    scope: str
    purpose: str


class Jwks(BaseModel):
    keys: list[dict[str, str]]


class Health(BaseModel):
    status: str
    detail: dict[str, int | str | bool] = {}


# -- CAMARA (field names as in the specs) ---------------------------------------------------


CamaraPhone = Annotated[
    str,
    Field(pattern=E164_PATTERN, examples=["+346661113334"], description="E.164 with leading '+' (MSISDN)"),
]


class CamaraModel(BaseModel):
    """Unknown fields are ignored (the CAMARA schemas admit additional properties)."""

    model_config = ConfigDict(extra="ignore")


def _phone_required(schema: dict[str, Any]) -> None:
    # Two-legged tokens only: the number cannot come from the token, so ``phoneNumber`` (optional
    # in the CAMARA schema, for three-legged tokens) is required here. Its absence (or null) is
    # still answered as CAMARA prescribes: 422 MISSING_IDENTIFIER.
    schema["required"] = sorted({*schema.get("required", []), "phoneNumber"})


class CreateCheckSwap(CamaraModel):
    model_config = ConfigDict(json_schema_extra=_phone_required)
    phoneNumber: CamaraPhone | SkipJsonSchema[None] = Absent
    # No ``le`` here: a value above the maximum is 400 OUT_OF_RANGE (the route checks it), not
    # the INVALID_ARGUMENT of a schema violation; the published document still states the maximum.
    maxAge: int = Field(
        default=240,
        ge=1,
        json_schema_extra={"maximum": 2400},
        description=(
            "Period in hours to be checked. CAMARA allows up to 2400; the published maximum is "
            "this deployment's monitored period, and a value above it is 400 OUT_OF_RANGE"
        ),
    )


    @field_validator("maxAge", mode="before")
    @classmethod
    def _integer_only(cls, value: Any) -> Any:
        # JSON Schema's integer: 24 and 24.0 are integers, the string "24" and true are not
        # (pydantic's lax mode would coerce them)
        if isinstance(value, str | bool):
            raise ValueError("maxAge must be an integer")
        return value


class CreateSwapDate(CamaraModel):
    model_config = ConfigDict(json_schema_extra=_phone_required)
    phoneNumber: CamaraPhone | SkipJsonSchema[None] = Absent


class CheckSwapInfo(CamaraModel):
    swapped: bool


class SimSwapInfo(CamaraModel):
    latestSimChange: datetime | None
    monitoredPeriod: int | None = None


class DeviceSwapInfo(CamaraModel):
    latestDeviceChange: datetime | None
    monitoredPeriod: int | None = None
