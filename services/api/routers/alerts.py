"""The alert feed (cursor pages) and the same feed as server-sent events.

Both show only alerts the partner is entitled to (its config's ``alerts`` entitlement, minimum
level, entity types, operator clears), cut to its disclosure tier. The SSE ``id`` of each
event is the cursor after it, so a reconnecting client resumes with ``Last-Event-ID``; a stream
opened without one starts at the live end. A partner may hold ``FRAUDRADAR_STREAMS_MAX`` streams
at once on a replica (more answer 429).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from services.api.deps import AlertsAuth, ServiceDep
from services.api.errors import ERRORS_COMMON
from services.api.exceptions import TooManyRequests, Unavailable
from services.api.metrics import RATE_LIMITED
from services.api.schemas import AlertPage
from services.api.store import CURSOR_MAX_LENGTH, CURSOR_PATTERN, decode_cursor, encode_cursor

router = APIRouter(tags=["alerts"], responses=ERRORS_COMMON)
_CURSOR_DOC = (
    "from nextCursor (or an SSE id): the next offset per partition, e.g. 0-1520.1-1498; "
    "a cursor past the end answers an empty page"
)
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
    cursor: Annotated[
        str | None, Query(max_length=CURSOR_MAX_LENGTH, pattern=CURSOR_PATTERN, description=_CURSOR_DOC)
    ] = None,
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
    cursor: Annotated[
        str | None, Query(max_length=CURSOR_MAX_LENGTH, pattern=CURSOR_PATTERN, description=_CURSOR_DOC)
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=CURSOR_MAX_LENGTH, pattern=CURSOR_PATTERN)
    ] = None,
    max_seconds: Annotated[int, Query(ge=1, le=3600, description="server ends the stream after")] = 3600,
) -> StreamingResponse:
    if not service.caught_up:
        raise Unavailable()
    partner = principal.partner
    # Resume where the client was (Last-Event-ID, else ?cursor); a stream without either
    # starts at the live end: the backlog is the paged feed's job, not every reconnect's.
    start = last_event_id or cursor
    positions = decode_cursor(start) if start else dict(service.alerts.end)
    open_now = service.streams.get(partner.id, 0)
    if open_now >= service.settings.streams_max:
        RATE_LIMITED.labels(partner.id, "streams").inc()
        raise TooManyRequests(
            int(KEEPALIVE_S), f"At most {service.settings.streams_max} alert streams may be open at once."
        )
    service.streams[partner.id] = open_now + 1

    def release() -> None:
        left = service.streams.get(partner.id, 1) - 1
        if left > 0:
            service.streams[partner.id] = left
        else:
            service.streams.pop(partner.id, None)

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

    return _CountedStream(
        release,
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


class _CountedStream(StreamingResponse):
    """A stream that gives its slot back however it ends (done, client gone, error)."""

    def __init__(self, release: Callable[[], None], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
