"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (caught up with the
risk, alert and partner-state topics, and audit records are being acknowledged),
``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from services.api.deps import ServiceDep

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(*, service: ServiceDep) -> Response:
    m = service.materialiser
    p = service.producer
    detail = {
        "risk_entities": len(service.risk),
        "alerts": len(service.alerts),
        "webhook_queue": service.dispatcher.pending() if service.dispatcher else 0,
        "materialiser_failed": bool(m is not None and m.failed is not None),
        "audit_in_flight": p.audit_in_flight() if p else 0,
        "audit_unacked_s": round(p.audit_stalled_s(), 1) if p else 0.0,
    }
    if service.ready:
        return JSONResponse({"status": "ready", "detail": detail})
    status = "audit-stalled" if service.audit_stalled else "catching-up"
    return JSONResponse({"status": status, "detail": detail}, status_code=503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
