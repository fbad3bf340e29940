"""Partner feedback: confirmed fraud or false positive, to ``fraudradar.feedback``.

Only on subjects the partner had to do with (``check_relation``), capped per partner and day,
and audited."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from services.api.deps import ReportsAuth, ServiceDep, correlator_of
from services.api.errors import ERRORS_COMMON, ERRORS_WITH_404
from services.api.exceptions import InvalidArgument, NotFound, PermissionDenied
from services.api.partners import Partner
from services.api.schemas import ReportAccepted, ReportIn
from services.api.service import ApiService
from services.api.store import now_iso
from services.common.records import Feedback

router = APIRouter(tags=["reports"], responses={**ERRORS_COMMON, 404: ERRORS_WITH_404[404]})


def check_relation(service: ApiService, partner: Partner, entity_key: str, alert_id: str | None) -> None:
    """A partner reports on (or contests) only what it had to do with: a number it looked up or
    watched, or was shown an alert on, within the retention window; a named ``alertId`` must be
    an alert of that entity in that partner's own feed. Feedback trains the scorer, so a
    partner must not be able to label numbers it never met (docs/api.md "Reports and contests")."""
    if alert_id is not None:
        entry = service.alerts.by_id.get(alert_id)
        if (
            entry is None
            or f"{entry.alert.entity_type}:{entry.alert.entity}" != entity_key
            or not service.alert_visible(partner, entry.alert)
        ):
            raise NotFound("No alert with this alertId for this subject in your feed.")
        return
    if not service.had_contact(partner, entity_key):
        raise PermissionDenied(
            "You did not look up, watch or get an alert on this subject within the retention window."
        )


@router.post(
    "/v1/reports",
    response_model=ReportAccepted,
    status_code=202,
    summary="Report confirmed fraud or a false positive",
)
async def report(*, body: ReportIn, request: Request, principal: ReportsAuth, service: ServiceDep) -> Any:
    if (body.phone_number is None) == (body.imei is None):
        raise InvalidArgument("Give exactly one of phoneNumber and imei.")
    if body.imei is not None:
        if principal.partner.type not in ("telco", "operator"):
            raise PermissionDenied("Only telco and operator partners report on devices.")
        entity_type, entity = "device", service.resolver.device(body.imei)
    else:
        assert body.phone_number is not None
        entity_type, entity = "number", service.resolver.number(body.phone_number)
    partner = principal.partner
    check_relation(service, partner, f"{entity_type}:{entity}", body.alert_id)
    service.reports_today.take(partner)
    service.audit(principal, f"report:{body.label}", entity_type, entity, "none", correlator_of(request))
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
