"""Partner feedback: confirmed fraud or false positive, to ``fraudradar.feedback``."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from services.api.deps import ReportsAuth, ServiceDep
from services.api.errors import ERRORS_COMMON
from services.api.exceptions import InvalidArgument, PermissionDenied
from services.api.schemas import ReportAccepted, ReportIn
from services.api.store import now_iso
from services.common.records import Feedback

router = APIRouter(tags=["reports"], responses=ERRORS_COMMON)


@router.post(
    "/v1/reports",
    response_model=ReportAccepted,
    status_code=202,
    summary="Report confirmed fraud or a false positive",
)
async def report(*, body: ReportIn, principal: ReportsAuth, service: ServiceDep) -> Any:
    if (body.phone_number is None) == (body.imei is None):
        raise InvalidArgument("Give exactly one of phoneNumber and imei.")
    if body.imei is not None:
        if principal.partner.type not in ("telco", "operator"):
            raise PermissionDenied("Only telco and operator partners report on devices.")
        entity_type, entity = "device", service.resolver.device(body.imei)
    else:
        assert body.phone_number is not None
        entity_type, entity = "number", service.resolver.number(body.phone_number)
    feedback = Feedback(
        report_id=uuid.uuid4().hex,
        partner=principal.partner.id,
        entity_type=entity_type,  # type: ignore[arg-type]
        entity=entity,
        label=body.label,
        reported_at=now_iso(),
        alert_id=body.alert_id,
        note=body.note,
    )
    await service.send_feedback(feedback)
    return {"reportId": feedback.report_id}
