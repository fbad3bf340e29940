"""The payment-time call-state check and the banks' call pre-announcements (CAMARA Verified Caller).

``POST /v1/call-state:check``: is the bank's customer in a call now, or was one within the
window, and is that call risky? The answer has a status, timings, a level and reason codes,
never the other party. Its own scope (``call-state:check``), fraud-prevention purpose only,
audited per lookup and counted in the hourly budget of distinct numbers like every lookup.

``POST /verified-caller/v0.1/pre-announce``: a bank announces an outbound call from one of its
registered numbers (``FRAUDRADAR_PROTECTED_NUMBERS_FILE``); a call presenting that number to
that customer within the time to live is then not taken for a spoof.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from prometheus_client import Counter
from pydantic import Field

from services.api.deps import authorize, correlator_of, scoped, service_of
from services.api.errors import ERRORS_COMMON
from services.api.exceptions import OutOfRange
from services.api.metrics import _metric
from services.api.responses import JSONBody
from services.api.schemas import E164, Level, Model, PhoneText

router = APIRouter(tags=["call-state"], responses=ERRORS_COMMON)
announce_router = APIRouter(tags=["verified-caller"], responses=ERRORS_COMMON)
_CHECK, _ANNOUNCE = ["call-state:check"], ["verified-caller:pre-announce"]

CHECKS = _metric(Counter, "fraudradar_api_call_state_checks_total",
                 "call-state checks by answer (status, level and the counterpart's class, never its identity)",
                 ("partner", "status", "level", "counterpart_class"))
ANNOUNCED = _metric(Counter, "fraudradar_api_call_announcements_total",
                    "pre-announced outbound calls accepted", ("partner",))


class CallStateCheck(Model):
    phone_number: str = PhoneText
    window_minutes: int = Field(default=15, ge=1, le=240,
                                description="how far back an ended call counts (at most the deployment's "
                                            "FRAUDRADAR_CALL_WINDOW_MAX_MIN; above it: 400 OUT_OF_RANGE)")


class CallReason(Model):
    code: str
    text: str


class CallStateAnswer(Model):
    """``NO_CALL`` is the whole answer for a customer with no call in progress or within the window."""

    status: Literal["IN_CALL", "RECENT_CALL", "NO_CALL"]
    risk_level: Level
    reasons: list[CallReason]
    started_at: str | None = None
    ended_at: str | None = None
    answered: bool | None = None
    duration_seconds: int | None = Field(default=None, ge=0, description="talking (or ringing) so far; "
                                                                         "the call's duration once ended")


class PreAnnouncement(Model):
    calling_participant: E164
    called_participant: E164
    strategy: Literal["SMS", "BRAND_DISPLAY"] | None = None
    time_to_live: int = Field(default=60, ge=1, le=86400, description="seconds the announcement stays valid")
    registration_id: str | None = Field(default=None, max_length=64)
    dynamic_display_name: str | None = Field(default=None, max_length=32)


class AnnouncementInfo(Model):
    pre_announcement_id: str
    expires_at: str


@router.post(
    "/v1/call-state:check",
    openapi_extra=scoped("call-state:check"),
    response_model=CallStateAnswer,
    response_model_exclude_none=True,
    summary="Is this customer in a risky call right now (or was within the window)?",
)
async def check_call_state(*, body: CallStateCheck, request: Request) -> Any:
    principal = authorize(request, _CHECK)
    service = service_of(request)
    service.require_lookup_ready()
    calls = service.calls
    calls.require_ready()
    if body.window_minutes > service.settings.call_window_max_min:
        raise OutOfRange(f"windowMinutes is at most {service.settings.call_window_max_min}.")
    pseudonym = service.resolver.number(body.phone_number)
    service.limiter.spend_budget(principal.partner, (pseudonym,))
    answer, level, klass = calls.check(pseudonym, body.window_minutes)
    service.audit(principal, "call-state:check", "number", pseudonym, level, correlator_of(request))
    CHECKS.labels(principal.partner.id, answer["status"], level, klass).inc()
    return JSONBody(answer)


@announce_router.post(
    "/verified-caller/v0.1/pre-announce",
    openapi_extra=scoped("verified-caller:pre-announce"),
    response_model=AnnouncementInfo,
    status_code=201,
    summary="Pre-announce an outbound call from one of your registered numbers (CAMARA Verified Caller 0.1.0)",
)
async def pre_announce(*, body: PreAnnouncement, request: Request) -> Any:
    principal = authorize(request, _ANNOUNCE)
    service = service_of(request)
    service.calls.require_ready()
    info = await service.calls.announce(principal.partner.id, body.calling_participant, body.called_participant,
                                  body.time_to_live)
    pseudonym = service.resolver.number(body.called_participant)
    service.audit(principal, "verified-caller:pre-announce", "number", pseudonym, "none", correlator_of(request))
    ANNOUNCED.labels(principal.partner.id).inc()
    return JSONBody(info, status_code=201)
