"""Probes on the partner port: ``/healthz`` (the process answers) and ``/readyz`` (caught up
with the risk, alert and partner-state topics, and audit records are being acknowledged), for
a load balancer in front of it. They tell the status only; ``/metrics`` and the probes with
their detail are on the operations port (``FRAUDRADAR_HTTP_PORT``, see ``services/api/app.py``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from services.api.deps import ServiceDep

router = APIRouter(include_in_schema=False)
metrics_router = APIRouter(include_in_schema=False)  # only when the two ports are one


@metrics_router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(*, service: ServiceDep) -> Response:
    if service.ready:
        return JSONResponse({"status": "ready"})
    status = "audit-stalled" if service.audit_stalled else "catching-up"
    return JSONResponse({"status": status}, status_code=503)
