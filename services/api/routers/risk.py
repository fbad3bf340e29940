"""Risk lookups: one number, a batch of numbers, one device. Numbers travel only in bodies.

The hottest routes of the API, so they skip two of FastAPI's per-request costs: each calls
``authorize`` itself as its first statement (``scoped`` declares the same OpenAPI security a
``*Auth`` dependency would), and returns a pre-built body (``JSONBody``; ``response_model``
still documents it, see ``services/api/responses.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from services.api.deps import authorize, correlator_of, scoped, service_of
from services.api.errors import ERRORS_COMMON
from services.api.metrics import lookups_counter
from services.api.responses import JSONBody
from services.api.schemas import BatchAnswer, DeviceLookup, NumberBatchLookup, NumberLookup, RiskAnswer

router = APIRouter(tags=["risk"], responses=ERRORS_COMMON)
_NUMBERS, _DEVICES = ["risk:numbers"], ["risk:devices"]


@router.post(
    "/v1/risk/numbers:lookup",
    openapi_extra=scoped("risk:numbers"),
    response_model=RiskAnswer,
    response_model_exclude_none=True,
    summary="Risk of one phone number",
)
async def lookup_number(
    *,
    body: NumberLookup,
    request: Request,
) -> Any:
    principal = authorize(request, _NUMBERS)
    service = service_of(request)
    service.require_lookup_ready()
    pseudonym = service.resolver.number(body.phone_number)
    service.limiter.spend_budget(principal.partner, (pseudonym,))
    answer, level = service.risk_answer(principal.partner, f"number:{pseudonym}")
    service.audit(principal, "numbers:lookup", "number", pseudonym, level, correlator_of(request))
    service.touch(principal.partner, f"number:{pseudonym}")
    lookups_counter(principal.partner.id, "number").inc()
    return JSONBody(answer)


@router.post(
    "/v1/risk/numbers:batch",
    openapi_extra=scoped("risk:numbers"),
    response_model=BatchAnswer,
    response_model_exclude_none=True,
    summary="Risk of up to 100 phone numbers (answers in request order)",
)
async def lookup_numbers(
    *,
    body: NumberBatchLookup,
    request: Request,
) -> Any:
    principal = authorize(request, _NUMBERS)
    service = service_of(request)
    service.require_lookup_ready()
    # every item matches the E.164 pattern (the schema), so every item resolves
    resolved = [(text, service.resolver.number(text)) for text in body.phone_numbers]
    service.limiter.spend_budget(principal.partner, (p for _, p in resolved))
    results: list[dict[str, Any]] = []
    correlator = correlator_of(request)
    for text, pseudonym in resolved:
        answer, level = service.risk_answer(principal.partner, f"number:{pseudonym}")
        service.audit(principal, "numbers:batch", "number", pseudonym, level, correlator)
        service.touch(principal.partner, f"number:{pseudonym}")
        results.append({"phoneNumber": text, "result": answer})
    lookups_counter(principal.partner.id, "number").inc(len(resolved))
    return JSONBody({"results": results})


@router.post(
    "/v1/risk/devices:lookup",
    openapi_extra=scoped("risk:devices"),
    response_model=RiskAnswer,
    response_model_exclude_none=True,
    summary="Risk of one device (telco and operator partners)",
)
async def lookup_device(
    *,
    body: DeviceLookup,
    request: Request,
) -> Any:
    principal = authorize(request, _DEVICES)
    service = service_of(request)
    service.require_lookup_ready()
    pseudonym = service.resolver.device(body.imei)
    service.limiter.spend_budget(principal.partner, (f"device:{pseudonym}",))
    answer, level = service.risk_answer(principal.partner, f"device:{pseudonym}")
    service.audit(principal, "devices:lookup", "device", pseudonym, level, correlator_of(request))
    service.touch(principal.partner, f"device:{pseudonym}")
    lookups_counter(principal.partner.id, "device").inc()
    return JSONBody(answer)
