"""The alert feed (cursor pages) and the same feed as server-sent events.

Both show only alerts the partner is entitled to (its config's ``alerts`` entitlement, minimum
level, entity types, operator clears), cut to its disclosure tier. The SSE ``id`` of each
event is the cursor after it, so a reconnecting client resumes with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from services.api.deps import AlertsAuth, ServiceDep
from services.api.errors import ERRORS_COMMON
from services.api.exceptions import Unavailable
from services.api.schemas import AlertPage
from services.api.store import decode_cursor, encode_cursor

router = APIRouter(tags=["alerts"], responses=ERRORS_COMMON)
KEEPALIVE_S = 15.0


@router.get(
    "/v1/alerts",
    response_model=AlertPage,
    response_model_exclude_none=True,
    summary="Alert feed: the alerts you are entitled to, oldest first",
)
async def alert_feed(
    *,
    principal: AlertsAuth,
    service: ServiceDep,
    cursor: Annotated[str | None, Query(max_length=4096, description="from nextCursor")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    if not service.caught_up:
        raise Unavailable()
    positions = decode_cursor(cursor) if cursor else {}
    partner = principal.partner
    entries, nxt = service.alerts.page(
        positions,
        min(limit, service.settings.page_size_max),
        lambda e: service.alert_visible(partner, e.alert),
    )
    return {
        "alerts": [service.alert_view(partner, e.alert) for e in entries],
        "nextCursor": encode_cursor(nxt),
    }


@router.get(
    "/v1/alerts:stream",
    summary="Alert feed as server-sent events (text/event-stream)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "events 'alert' with an AlertOut as data; id = cursor",
        }
    },
)
async def alert_stream(
    *,
    request: Request,
    principal: AlertsAuth,
    service: ServiceDep,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=4096)] = None,
    max_seconds: Annotated[int, Query(ge=1, le=3600, description="server ends the stream after")] = 3600,
) -> StreamingResponse:
    if not service.caught_up:
        raise Unavailable()
    start = last_event_id or cursor
    positions = decode_cursor(start) if start else {}
    partner = principal.partner
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds

    async def events() -> AsyncIterator[bytes]:
        nonlocal positions
        yield b"retry: 2000\n\n"
        while loop.time() < deadline:
            # Take the wake-up event *before* reading, so nothing appended in between is missed.
            wake = service.new_alerts_event()
            entries, nxt = service.alerts.page(
                positions, 200, lambda e: service.alert_visible(partner, e.alert)
            )
            for entry in entries:
                step = dict(positions)
                step[entry.partition] = entry.offset + 1
                positions = step
                data = orjson.dumps(service.alert_view(partner, entry.alert))
                yield b"id: " + encode_cursor(positions).encode() + b"\nevent: alert\ndata: " + data + b"\n\n"
            positions = nxt
            if entries:
                continue
            if await request.is_disconnected():
                return
            try:
                await asyncio.wait_for(wake.wait(), min(KEEPALIVE_S, max(0.0, deadline - loop.time())))
            except TimeoutError:
                yield b": keepalive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
