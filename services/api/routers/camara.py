"""CAMARA SIM Swap v2 and Device Swap v1, answered from the SIM/device change dates the
scorer keeps on each number's risk record (``sim_changed_at``, ``device_changed_at``).

Two-legged tokens only (client credentials): ``phoneNumber`` is therefore required and its
absence is ``422 MISSING_IDENTIFIER``. Changes older than the monitored period are not
disclosed (``latestSimChange: null`` with ``monitoredPeriod``), and a ``maxAge`` beyond it, or
beyond the specs' own maximum of 2400 h, is ``400 OUT_OF_RANGE``, as the specs prescribe.

What a number the operator's records do not hold answers (docs/privacy.md):
- impossible in the numbering plan (libphonenumber): ``404 IDENTIFIER_NOT_FOUND``, before any
  budget is spent, since it is public knowledge;
- SIM Swap, no record: no change within the monitored period (``swapped: false``,
  ``latestSimChange: null`` with ``monitoredPeriod``), the spec's answer for "nothing to
  disclose";
- Device Swap, no record: ``422 SERVICE_NOT_APPLICABLE``, which Device Swap 1.0.0 prescribes
  when "no data is available in the operator's records".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request

from services.api.deps import (
    DeviceSwapCheckAuth,
    DeviceSwapDateAuth,
    ServiceDep,
    SimSwapCheckAuth,
    SimSwapDateAuth,
    correlator_of,
)
from services.api.errors import ERRORS_COMMON, _doc
from services.api.exceptions import IdentifierNotFound, MissingIdentifier, OutOfRange, ServiceNotApplicable
from services.api.metrics import LOOKUPS
from services.api.schemas import CheckSwapInfo, CreateCheckSwap, CreateSwapDate, DeviceSwapInfo, SimSwapInfo
from services.api.store import parse_time
from services.api.tokens import Principal

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS_COMMON,
    404: _doc("IDENTIFIER_NOT_FOUND: the number is impossible in the numbering plan"),
    422: _doc(
        "MISSING_IDENTIFIER: phoneNumber is required; SERVICE_NOT_APPLICABLE (Device Swap): "
        "no data for the number in the operator's records"
    ),
}
MAX_AGE_LIMIT_H = 2400  # the specs' maximum for maxAge
sim_router = APIRouter(prefix="/sim-swap/v2", tags=["CAMARA SIM Swap"], responses=_RESPONSES)
device_router = APIRouter(prefix="/device-swap/v1", tags=["CAMARA Device Swap"], responses=_RESPONSES)

Change = Literal["sim", "device"]


def _changed_at(
    *,
    service: ServiceDep,
    principal: Principal,
    phone: str | None,
    change: Change,
    action: str,
    correlator: str | None,
) -> datetime | None:
    if phone is None:
        raise MissingIdentifier("phoneNumber is required with a two-legged access token.")
    if not service.resolver.is_possible(phone):
        raise IdentifierNotFound("phoneNumber is not a possible number in its country's numbering plan.")
    service.require_lookup_ready()
    pseudonym = service.resolver.number(phone)
    service.limiter.spend_budget(principal.partner, (pseudonym,))
    risk = service.risk.get(f"number:{pseudonym}")
    if risk is None and change == "device":
        service.audit(principal, action, "number", pseudonym, "no-data", correlator)
        LOOKUPS.labels(principal.partner.id, "device_swap").inc()
        raise ServiceNotApplicable("No device data is available for this phone number in the operator's records.")
    raw = None if risk is None else (risk.sim_changed_at if change == "sim" else risk.device_changed_at)
    at = datetime.fromtimestamp(parse_time(raw), UTC) if raw else None
    horizon = service.clock() - service.settings.swap_monitored_days * 86400
    if at is not None and at.timestamp() < horizon:
        at = None  # beyond the monitored period: not disclosed
    service.audit(
        principal, action, "number", pseudonym, "changed" if at else "unknown", correlator
    )
    service.touch(principal.partner, f"number:{pseudonym}")
    LOOKUPS.labels(principal.partner.id, "sim_swap" if change == "sim" else "device_swap").inc()
    return at


def _check_max_age(service: ServiceDep, max_age_h: int) -> None:
    if max_age_h > MAX_AGE_LIMIT_H:
        raise OutOfRange(f"maxAge cannot exceed {MAX_AGE_LIMIT_H} hours.")
    monitored_h = service.settings.swap_monitored_days * 24
    if max_age_h > monitored_h:
        raise OutOfRange(
            f"Check monitor period could not exceed local regulations "
            f"({service.settings.swap_monitored_days} days)."
        )


def _swapped_within(*, service: ServiceDep, principal: Principal, body: CreateCheckSwap, change: Change,
                    action: str, request: Request) -> dict[str, bool]:
    """The check answer shared by SIM Swap and Device Swap: a change within ``maxAge`` hours."""
    _check_max_age(service, body.maxAge)
    at = _changed_at(
        service=service,
        principal=principal,
        phone=body.phoneNumber,
        change=change,
        action=action,
        correlator=correlator_of(request),
    )
    return {"swapped": at is not None and at.timestamp() >= service.clock() - body.maxAge * 3600}


@sim_router.post(
    "/check",
    response_model=CheckSwapInfo,
    operation_id="checkSimSwap",
    summary="Check if SIM swap has been performed during a past period",
)
async def check_sim_swap(
    *,
    body: CreateCheckSwap,
    principal: SimSwapCheckAuth,
    service: ServiceDep,
    request: Request,
) -> Any:
    return _swapped_within(service=service, principal=principal, body=body, change="sim",
                           action="sim-swap:check", request=request)


@sim_router.post(
    "/retrieve-date",
    response_model=SimSwapInfo,
    response_model_exclude_unset=True,
    operation_id="retrieveSimSwapDate",
    summary="Retrieve SIM swap date",
)
async def retrieve_sim_swap_date(
    *,
    body: CreateSwapDate,
    principal: SimSwapDateAuth,
    service: ServiceDep,
    request: Request,
) -> Any:
    at = _changed_at(
        service=service,
        principal=principal,
        phone=body.phoneNumber,
        change="sim",
        action="sim-swap:retrieve-date",
        correlator=correlator_of(request),
    )
    if at is None:
        return SimSwapInfo(latestSimChange=None, monitoredPeriod=service.settings.swap_monitored_days)
    return SimSwapInfo(latestSimChange=at)


@device_router.post(
    "/check",
    response_model=CheckSwapInfo,
    operation_id="checkDeviceSwap",
    summary="Check if a device swap has been performed during a past period",
)
async def check_device_swap(
    *,
    body: CreateCheckSwap,
    principal: DeviceSwapCheckAuth,
    service: ServiceDep,
    request: Request,
) -> Any:
    return _swapped_within(service=service, principal=principal, body=body, change="device",
                           action="device-swap:check", request=request)


@device_router.post(
    "/retrieve-date",
    response_model=DeviceSwapInfo,
    response_model_exclude_unset=True,
    operation_id="retrieveDeviceSwapDate",
    summary="Get last device swap date",
)
async def retrieve_device_swap_date(
    *,
    body: CreateSwapDate,
    principal: DeviceSwapDateAuth,
    service: ServiceDep,
    request: Request,
) -> Any:
    at = _changed_at(
        service=service,
        principal=principal,
        phone=body.phoneNumber,
        change="device",
        action="device-swap:retrieve-date",
        correlator=correlator_of(request),
    )
    if at is None:
        return DeviceSwapInfo(latestDeviceChange=None, monitoredPeriod=service.settings.swap_monitored_days)
    return DeviceSwapInfo(latestDeviceChange=at)
