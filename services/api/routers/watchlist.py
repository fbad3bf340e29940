"""Watch-lists: a partner registers the numbers it cares about (kept as pseudonyms) and is
told about their risk changes (webhook ``risk.changed``, and in the alert feed when its
entitlement is ``watchlist``: only alerts raised after the entry was added). Adding an entry
counts as a lookup (budget and audit). Entry ids are derived from partner and number, so registering
the same number twice is idempotent; another partner's entry answers 404."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from services.api.deps import ServiceDep, WatchlistAuth, correlator_of
from services.api.errors import ERRORS_WITH_404
from services.api.exceptions import Conflict, NotFound
from services.api.partner_state import WatchEntry
from services.api.schemas import WatchEntryIn, WatchEntryList, WatchEntryOut
from services.api.store import now_iso

router = APIRouter(tags=["watch-list"], responses=ERRORS_WITH_404)
EntryId = Annotated[str, Path(pattern=r"^[0-9a-f]{24}$")]


def _out(entry: WatchEntry) -> dict[str, Any]:
    return {
        "id": entry.entry_id,
        "entityType": entry.entity_type,
        "createdAt": entry.created_at,
        "reference": entry.reference,
    }


@router.post(
    "/v1/watchlist/entries",
    response_model=WatchEntryOut,
    status_code=201,
    response_model_exclude_none=True,
    summary="Watch a number",
)
async def add_entry(*, body: WatchEntryIn, request: Request, principal: WatchlistAuth, service: ServiceDep) -> Any:
    partner = principal.partner
    # Watching a number tells what a lookup tells (its alerts, its risk changes), so an entry
    # is a lookup: it needs the audit trail, spends the hourly budget of distinct numbers
    # (one per number; the same number again in the hour is free) and is audited.
    service.require_lookup_ready()
    pseudonym = service.resolver.number(body.phone_number)
    entry_id = hashlib.sha256(f"{partner.id}:number:{pseudonym}".encode()).hexdigest()[:24]
    existing = service.pstate.watch.get(partner.id, {})
    if entry_id not in existing and len(existing) >= service.settings.watchlist_max:
        raise Conflict("The watch-list is full.")
    service.limiter.spend_budget(partner, (pseudonym,))
    service.audit(principal, "watchlist:add", "number", pseudonym, "none", correlator_of(request))
    service.touch(partner, f"number:{pseudonym}")
    entry = WatchEntry(
        partner=partner.id,
        entry_id=entry_id,
        entity_type="number",
        entity=pseudonym,
        created_at=now_iso(),
        reference=body.reference,
    )
    await service.put_state(entry)
    return _out(entry)


@router.get(
    "/v1/watchlist/entries",
    response_model=WatchEntryList,
    response_model_exclude_none=True,
    summary="List your watch-list",
)
async def list_entries(
    *,
    principal: WatchlistAuth,
    service: ServiceDep,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9a-f]{24}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    entries = sorted(service.pstate.watch.get(principal.partner.id, {}).values(), key=lambda e: e.entry_id)
    if cursor:
        entries = [e for e in entries if e.entry_id > cursor]
    page = entries[:limit]
    nxt = page[-1].entry_id if len(entries) > limit else None
    return {"entries": [_out(e) for e in page], "nextCursor": nxt}


@router.get(
    "/v1/watchlist/entries/{entry_id}",
    response_model=WatchEntryOut,
    response_model_exclude_none=True,
    summary="One watch-list entry",
)
async def get_entry(*, entry_id: EntryId, principal: WatchlistAuth, service: ServiceDep) -> Any:
    entry = service.pstate.watch.get(principal.partner.id, {}).get(entry_id)
    if entry is None:
        raise NotFound("No such watch-list entry.")
    return _out(entry)


@router.delete(
    "/v1/watchlist/entries/{entry_id}",
    status_code=204,
    response_class=Response,
    summary="Stop watching a number",
)
async def delete_entry(*, entry_id: EntryId, principal: WatchlistAuth, service: ServiceDep) -> Response:
    entry = service.pstate.watch.get(principal.partner.id, {}).get(entry_id)
    if entry is None:
        raise NotFound("No such watch-list entry.")
    await service.delete_state(f"watch:{principal.partner.id}:{entry_id}")
    return Response(status_code=204)
