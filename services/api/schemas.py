"""Request and response bodies of the partner API (JSON in camelCase, as CAMARA does).

Optional answer fields are left out (not ``null``) when the partner's disclosure tier does not
include them or they do not apply; routes use ``response_model_exclude_none``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from services.api.errors import ErrorInfo

PhoneText = Field(
    min_length=3,
    max_length=32,
    description="E.164 (+31612345678) or a national number",
    examples=["+31612345678"],
)
CamaraPhone = Field(
    default=None,
    pattern=r"^\+[1-9][0-9]{4,14}$",
    examples=["+346661113334"],
    description="E.164 with leading '+' (MSISDN)",
)
Level = Literal["none", "low", "medium", "high", "critical"]
FlagLevel = Literal["low", "medium", "high", "critical"]
EventType = Literal["alert.raised", "risk.changed"]


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class NumberLookup(Model):
    phone_number: str = PhoneText


class NumberBatchLookup(Model):
    phone_numbers: list[str] = Field(min_length=1, max_length=100, description="at most 100 numbers")


class DeviceLookup(Model):
    imei: str = Field(
        pattern=r"^[0-9]{14,16}$", description="IMEI or IMEISV digits", examples=["35209900176148"]
    )


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
    result: RiskAnswer | None = None
    error: ErrorInfo | None = None


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
    url: str = Field(min_length=8, max_length=2048)
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
    phone_number: str | None = Field(default=None, min_length=3, max_length=32)
    imei: str | None = Field(default=None, pattern=r"^[0-9]{14,16}$")
    label: Literal["confirmed_fraud", "false_positive"]
    alert_id: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    note: str | None = Field(default=None, max_length=500)


class ReportAccepted(Model):
    report_id: str


class OverrideIn(Model):
    phone_number: str | None = Field(default=None, min_length=3, max_length=32)
    imei: str | None = Field(default=None, pattern=r"^[0-9]{14,16}$")
    action: Literal["clear", "pin"]
    level: FlagLevel | None = Field(default=None, description="required for 'pin'")
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
    contests: list[ContestOut]


class ContestResolution(Model):
    decision: Literal["upheld", "rejected"]
    resolution: str = Field(min_length=3, max_length=500)
    expires_in_hours: int = Field(
        default=168, ge=1, le=720, description="lifetime of the clearing override when upheld"
    )


class AuditQuery(Model):
    phone_number: str | None = Field(default=None, min_length=3, max_length=32)
    imei: str | None = Field(default=None, pattern=r"^[0-9]{14,16}$")
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
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


class CamaraModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateCheckSwap(CamaraModel):
    phoneNumber: str | None = CamaraPhone
    maxAge: int = Field(default=240, ge=1, le=2400, description="Period in hours to be checked")


class CreateSwapDate(CamaraModel):
    phoneNumber: str | None = CamaraPhone


class CheckSwapInfo(CamaraModel):
    swapped: bool


class SimSwapInfo(CamaraModel):
    latestSimChange: datetime | None
    monitoredPeriod: int | None = None


class DeviceSwapInfo(CamaraModel):
    latestDeviceChange: datetime | None
    monitoredPeriod: int | None = None
