"""CAMARA Call Forwarding Signal 0.4, KYC Tenure 0.2 and Number Recycling 0.2, answered from the
line the scorer keeps on each number's risk record (``forwarding``, ``line``, ``activated_at``,
``first_seen_at``), which telcos feed with contract v1's ``forwarding`` and ``subscription``
events (docs/contracts.md).

Like SIM/Device Swap (``camara``): two-legged tokens only, so ``phoneNumber`` is required
(``422 MISSING_IDENTIFIER``); a number impossible in the numbering plan is ``404
IDENTIFIER_NOT_FOUND`` before any budget is spent; every answer spends the partner's per-number
budget, is audited and metered. What a number without records answers (docs/privacy.md):

- Call Forwarding Signal: no forwarding set (``active: false`` / ``["inactive"]``): the operator
  reports every forwarding change, so none held is none set;
- KYC Tenure: ``422 SERVICE_NOT_APPLICABLE`` (no tenure to confirm); a number whose line ceased
  answers the same, as it has no subscription now;
- Number Recycling: ``phoneNumberRecycled: false`` (no reassignment in the operator's records).

A ``tenureDate`` or ``specifiedDate`` after today is ``400 OUT_OF_RANGE``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BeforeValidator, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

from services.api.deps import (
    CallForwardingAuth,
    KycTenureAuth,
    NumberRecyclingAuth,
    ServiceDep,
    UnconditionalForwardingAuth,
    correlator_of,
)
from services.api.errors import ERRORS_COMMON, _doc
from services.api.exceptions import IdentifierNotFound, MissingIdentifier, OutOfRange, ServiceNotApplicable
from services.api.metrics import LOOKUPS
from services.api.schemas import Absent, CamaraModel, CamaraPhone, _phone_required
from services.api.store import parse_time
from services.api.tokens import Principal
from services.common.records import Risk

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS_COMMON,
    404: _doc("IDENTIFIER_NOT_FOUND: the number is impossible in the numbering plan"),
    422: _doc(
        "MISSING_IDENTIFIER: phoneNumber is required; SERVICE_NOT_APPLICABLE (KYC Tenure): no "
        "subscription of the number in the operator's records"
    ),
}
forwarding_router = APIRouter(prefix="/call-forwarding-signal/v0.4", tags=["CAMARA Call Forwarding Signal"],
                              responses=_RESPONSES)
tenure_router = APIRouter(prefix="/kyc-tenure/v0.2", tags=["CAMARA KYC Tenure"], responses=_RESPONSES)
recycling_router = APIRouter(prefix="/number-recycling/v0.2", tags=["CAMARA Number Recycling"],
                             responses=_RESPONSES)

# contract v1's forwarding kinds → Call Forwarding Signal's service names
SERVICES = {"unconditional": "unconditional", "busy": "conditional_busy",
            "not_reachable": "conditional_not_reachable", "no_answer": "conditional_no_answer"}
ForwardingService = Literal["inactive", "unconditional", "conditional_busy", "conditional_not_reachable",
                            "conditional_no_answer"]


_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def _full_date(value: Any) -> Any:
    # RFC 3339 full-date text only: pydantic's lax date would also take 0 (1970-01-01) or a
    # date-time, which the published ``format: date`` does not
    if not isinstance(value, str) or not _FULL_DATE.match(value):
        raise ValueError("must be a date YYYY-MM-DD")
    return value


FullDate = Annotated[date, BeforeValidator(_full_date)]


class CreateCallForwardingSignal(CamaraModel):
    model_config = CamaraModel.model_config | {"json_schema_extra": _phone_required}
    phoneNumber: CamaraPhone | SkipJsonSchema[None] = Absent


class UnconditionalCallForwardingSignal(CamaraModel):
    active: bool = Field(description="Whether the unconditional call forwarding service is active.")


class CallForwardingSignal(RootModel[list[ForwardingService]]):
    """The call forwarding services active for the number, or ``["inactive"]``."""


class Tenure(CamaraModel):
    model_config = CamaraModel.model_config | {"json_schema_extra": _phone_required}
    phoneNumber: CamaraPhone | SkipJsonSchema[None] = Absent
    tenureDate: FullDate = Field(description="The date (YYYY-MM-DD) from which continuous tenure is to be confirmed")


class TenureInfo(CamaraModel):
    tenureDateCheck: bool = Field(description="Whether the subscription has had tenure since tenureDate")


class CreateCheckNumRecycling(CamaraModel):
    model_config = CamaraModel.model_config | {"json_schema_extra": _phone_required}
    phoneNumber: CamaraPhone | SkipJsonSchema[None] = Absent
    specifiedDate: FullDate = Field(description="Whether the number's subscriber changed after this date (YYYY-MM-DD)")


class CheckNumRecyclingInfo(CamaraModel):
    phoneNumberRecycled: bool = Field(description="Whether the number was reassigned after specifiedDate")


def _line(*, service: ServiceDep, principal: Principal, phone: str | None, action: str, kind: str,
          request: Request) -> Risk | None:
    """The number's risk record (None: no records), with the identifier, budget, audit and metering
    every one of these operations shares."""
    if phone is None:
        raise MissingIdentifier("phoneNumber is required with a two-legged access token.")
    if not service.resolver.is_possible(phone):
        raise IdentifierNotFound("phoneNumber is not a possible number in its country's numbering plan.")
    service.require_lookup_ready()
    pseudonym = service.resolver.number(phone)
    service.limiter.spend_budget(principal.partner, (pseudonym,))
    risk = service.risk.get(f"number:{pseudonym}")
    service.audit(principal, action, "number", pseudonym, "known" if risk is not None else "no-data",
                  correlator_of(request))
    service.touch(principal.partner, f"number:{pseudonym}")
    LOOKUPS.labels(principal.partner.id, kind).inc()
    return risk


def _not_future(day: date, field: str) -> float:
    """Epoch seconds of ``day``'s start (UTC); a day after today is 400 OUT_OF_RANGE."""
    if day > datetime.now(UTC).date():
        raise OutOfRange(f"{field} cannot be in the future.")
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _forwardings(risk: Risk | None) -> list[str]:
    return [SERVICES[kind] for kind in (risk.forwarding or [])] if risk is not None else []


@forwarding_router.post(
    "/unconditional-call-forwardings",
    response_model=UnconditionalCallForwardingSignal,
    operation_id="retrieveUnconditionalCallForwarding",
    summary="Check if the unconditional call forwarding is active",
)
async def retrieve_unconditional_call_forwarding(
    *, body: CreateCallForwardingSignal, principal: UnconditionalForwardingAuth, service: ServiceDep,
    request: Request,
) -> Any:
    risk = _line(service=service, principal=principal, phone=body.phoneNumber,
                 action="call-forwarding:unconditional", kind="call_forwarding", request=request)
    return {"active": "unconditional" in _forwardings(risk)}


@forwarding_router.post(
    "/call-forwardings",
    response_model=CallForwardingSignal,
    operation_id="retrieveCallForwarding",
    summary="Get information about the call forwarding services active",
)
async def retrieve_call_forwarding(
    *, body: CreateCallForwardingSignal, principal: CallForwardingAuth, service: ServiceDep, request: Request,
) -> Any:
    risk = _line(service=service, principal=principal, phone=body.phoneNumber,
                 action="call-forwarding:list", kind="call_forwarding", request=request)
    return _forwardings(risk) or ["inactive"]


@tenure_router.post(
    "/check-tenure",
    response_model=TenureInfo,
    operation_id="checkTenure",
    summary="Check the tenure of a mobile subscription",
)
async def check_tenure(
    *, body: Tenure, principal: KycTenureAuth, service: ServiceDep, request: Request,
) -> Any:
    since = _not_future(body.tenureDate, "tenureDate")
    risk = _line(service=service, principal=principal, phone=body.phoneNumber, action="kyc-tenure:check",
                 kind="kyc_tenure", request=request)
    # the tenure starts at the latest activation or port-in; without one, at the first event the
    # scorer holds for the number (it has been in service at least since then)
    start = None if risk is None or risk.line == "ceased" else (risk.activated_at or risk.first_seen_at)
    if start is None:
        raise ServiceNotApplicable("No subscription of this phone number is in the operator's records.")
    return {"tenureDateCheck": parse_time(start) <= since}


@recycling_router.post(
    "/check",
    response_model=CheckNumRecyclingInfo,
    operation_id="checkNumberRecycling",
    summary="Check if there has been a change of the subscriber of the number after a date",
)
async def check_number_recycling(
    *, body: CreateCheckNumRecycling, principal: NumberRecyclingAuth, service: ServiceDep, request: Request,
) -> Any:
    since = _not_future(body.specifiedDate, "specifiedDate")
    risk = _line(service=service, principal=principal, phone=body.phoneNumber, action="number-recycling:check",
                 kind="number_recycling", request=request)
    recycled = (risk is not None and risk.line == "recycled" and risk.activated_at is not None
                and parse_time(risk.activated_at) >= since)
    return {"phoneNumberRecycled": recycled}
