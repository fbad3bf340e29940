"""Operator actions: overrides (clear or pin a flag, with a reason, expiring), contests, and
the audit query. Every override and contest decision is itself written to the audit topic."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from services.api.audit import scan_audit
from services.api.deps import AuditAuth, ContestsAuth, OverridesAuth, ServiceDep, correlator_of
from services.api.errors import ERRORS_WITH_404
from services.api.exceptions import Conflict, InvalidArgument, NotFound
from services.api.identifiers import EntityResolver
from services.api.partner_state import Contest, Override
from services.api.routers.reports import check_relation
from services.api.schemas import (
    AuditAnswer,
    AuditQuery,
    ContestIn,
    ContestList,
    ContestOut,
    ContestResolution,
    OverrideIn,
    OverrideList,
    OverrideOut,
)
from services.api.store import now_iso, parse_time
from services.api.tokens import Principal

router = APIRouter(tags=["operator"], responses=ERRORS_WITH_404)
OverrideId = Annotated[str, Path(pattern=r"^ov_[A-Za-z0-9_-]{8,40}$")]
ContestId = Annotated[str, Path(pattern=r"^ct_[A-Za-z0-9_-]{8,40}$")]


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _entity(resolver: EntityResolver, phone: str | None, imei: str | None) -> tuple[str, str]:
    if (phone is None) == (imei is None):
        raise InvalidArgument("Give exactly one of phoneNumber and imei.")
    if imei is not None:
        return "device", resolver.device(imei)
    assert phone is not None
    return "number", resolver.number(phone)


def _override_out(o: Override) -> dict[str, Any]:
    return {
        "id": o.override_id,
        "entityType": o.entity_type,
        "action": o.action,
        "reason": o.reason,
        "createdBy": o.created_by,
        "createdAt": o.created_at,
        "expiresAt": o.expires_at,
        "level": o.level,
    }


async def _make_override(
    service: ServiceDep,
    principal: Principal,
    *,
    entity_type: str,
    entity: str,
    action: str,
    level: str | None,
    reason: str,
    hours: int,
) -> Override:
    now = datetime.now(UTC)
    override = Override(
        override_id="ov_" + secrets.token_urlsafe(12),
        entity_type=entity_type,  # type: ignore[arg-type]
        entity=entity,
        action=action,  # type: ignore[arg-type]
        reason=reason,
        created_by=principal.partner.id,
        created_at=_iso(now),
        expires_at=_iso(now + timedelta(hours=hours)),
        level=level,
    )
    await service.put_state(override)
    service.audit(principal, f"override:{action}", entity_type, entity, level or "none", None)
    return override


@router.post(
    "/v1/overrides",
    response_model=OverrideOut,
    status_code=201,
    response_model_exclude_none=True,
    summary="Clear or pin a flag (operator)",
)
async def create_override(*, body: OverrideIn, principal: OverridesAuth, service: ServiceDep) -> Any:
    if (body.action == "pin") != (body.level is not None):
        raise InvalidArgument("'level' is required for 'pin' and not allowed for 'clear'.")
    entity_type, entity = _entity(service.resolver, body.phone_number, body.imei)
    override = await _make_override(
        service,
        principal,
        entity_type=entity_type,
        entity=entity,
        action=body.action,
        level=body.level,
        reason=body.reason,
        hours=body.expires_in_hours,
    )
    return _override_out(override)


@router.get(
    "/v1/overrides",
    response_model=OverrideList,
    response_model_exclude_none=True,
    summary="Active overrides (operator)",
)
async def list_overrides(*, principal: OverridesAuth, service: ServiceDep) -> Any:
    now = service.clock()
    active = [o for o in service.pstate.overrides.values() if parse_time(o.expires_at) > now]
    return {"overrides": [_override_out(o) for o in sorted(active, key=lambda o: o.created_at)]}


@router.delete(
    "/v1/overrides/{override_id}",
    status_code=204,
    response_class=Response,
    summary="Lift an override (operator)",
)
async def delete_override(
    *, override_id: OverrideId, principal: OverridesAuth, service: ServiceDep
) -> Response:
    override = service.pstate.overrides.get(override_id)
    if override is None:
        raise NotFound("No such override.")
    await service.delete_state(f"override:{override_id}")
    service.audit(principal, "override:lift", override.entity_type, override.entity, "none", None)
    return Response(status_code=204)


def _contest_out(c: Contest, operator: bool) -> dict[str, Any]:
    return {
        "id": c.contest_id,
        "status": c.status,
        "reason": c.reason,
        "createdAt": c.created_at,
        "partner": c.partner if operator else None,
        "resolution": c.resolution,
        "resolvedAt": c.resolved_at,
    }


@router.post(
    "/v1/contests",
    response_model=ContestOut,
    status_code=201,
    response_model_exclude_none=True,
    summary="Contest the flag on a number",
)
async def create_contest(*, body: ContestIn, request: Request, principal: ContestsAuth, service: ServiceDep) -> Any:
    pseudonym = service.resolver.number(body.phone_number)
    partner = principal.partner
    check_relation(service, partner, f"number:{pseudonym}", None)
    today = now_iso()[:10]
    mine_today = sum(
        1 for c in service.pstate.contests.values() if c.partner == partner.id and c.created_at[:10] == today
    )
    service.contests_today.take(partner, mine_today)
    contest = Contest(
        contest_id="ct_" + secrets.token_urlsafe(12),
        partner=principal.partner.id,
        entity_type="number",
        entity=pseudonym,
        reason=body.reason,
        created_at=now_iso(),
    )
    await service.put_state(contest)
    service.audit(principal, "contest", "number", pseudonym, "none", correlator_of(request))
    return _contest_out(contest, principal.partner.type == "operator")


@router.get(
    "/v1/contests",
    response_model=ContestList,
    response_model_exclude_none=True,
    summary="Contests: your own, or all of them for the operator",
)
async def list_contests(
    *,
    principal: ContestsAuth,
    service: ServiceDep,
    cursor: Annotated[str | None, Query(pattern=r"^ct_[A-Za-z0-9_-]{8,40}$", description="nextCursor")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    operator = principal.partner.type == "operator"
    mine = sorted(
        (c for c in service.pstate.contests.values() if operator or c.partner == principal.partner.id),
        key=lambda c: c.contest_id,
    )
    if cursor:
        mine = [c for c in mine if c.contest_id > cursor]
    page = mine[:limit]
    nxt = page[-1].contest_id if len(mine) > limit else None
    return {"contests": [_contest_out(c, operator) for c in page], "nextCursor": nxt}


@router.post(
    "/v1/contests/{contest_id}:resolve",
    response_model=ContestOut,
    response_model_exclude_none=True,
    summary="Decide a contest (operator); 'upheld' clears the flag",
)
async def resolve_contest(
    *, contest_id: ContestId, body: ContestResolution, principal: OverridesAuth, service: ServiceDep
) -> Any:
    contest = service.pstate.contests.get(contest_id)
    if contest is None:
        raise NotFound("No such contest.")
    if contest.status != "open":
        raise Conflict("The contest is already decided.")
    if body.decision == "upheld":
        await _make_override(
            service,
            principal,
            entity_type=contest.entity_type,
            entity=contest.entity,
            action="clear",
            level=None,
            reason=f"contest {contest_id} upheld: {body.resolution}",
            hours=body.expires_in_hours,
        )
    decided = Contest(
        contest_id=contest.contest_id,
        partner=contest.partner,
        entity_type=contest.entity_type,
        entity=contest.entity,
        reason=contest.reason,
        created_at=contest.created_at,
        status=body.decision,
        resolution=body.resolution,
        resolved_by=principal.partner.id,
        resolved_at=now_iso(),
    )
    await service.put_state(decided)
    service.audit(principal, f"contest:{body.decision}", contest.entity_type, contest.entity, "none", None)
    return _contest_out(decided, True)


@router.post(
    "/v1/audit:query",
    response_model=AuditAnswer,
    response_model_exclude_none=True,
    summary="Who looked up a number or device, when, for what purpose (operator)",
)
async def audit_query(*, body: AuditQuery, principal: AuditAuth, service: ServiceDep) -> Any:
    entity_type, entity = _entity(service.resolver, body.phone_number, body.imei)
    now = datetime.now(UTC)
    since = body.since or now - timedelta(days=30)
    until = body.until or now
    if since > until:  # an empty window (not an error the schema could express)
        service.audit(principal, "audit:query", entity_type, entity, "none", None)
        return {"records": [], "complete": True}
    records, complete = await asyncio.to_thread(
        scan_audit,
        service.settings.kafka_config(),
        service.topic_audit,
        f"{entity_type}:{entity}",
        since_ms=max(0, int(since.timestamp() * 1000)),
        until_ms=max(0, int(until.timestamp() * 1000)),
        limit=body.limit,
        budget_s=service.settings.audit_scan_max_s,
    )
    # the query itself is audited too: operators are accountable for looking
    service.audit(principal, "audit:query", entity_type, entity, "none", None)
    return {
        "records": [
            {
                "at": r.at,
                "partner": r.partner,
                "purpose": r.purpose,
                "action": r.action,
                "answerLevel": r.answer_level,
                "correlator": r.correlator,
            }
            for r in records
        ],
        "complete": complete,
    }
