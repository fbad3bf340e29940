"""The ingest step as one call: decode → bounds → dedupe → views, for the service and backtests.

``IngestPipeline.process`` is pure apart from its bounded duplicate window, so the ingest
service, the HTTP batch push, ``fraudradar validate`` and the backtest all run exactly this
code. Blocking: none. Raises: nothing (bad input is a result, not an exception).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from services.common.call_records import CallState
from services.common.records import View
from services.ingest.call_transform import CallTransformer
from services.ingest.decode import DEFAULT_MAX_BYTES, FUTURE_EVENT, RawEvent, Rejected, decode
from services.ingest.transform import Transformer


@dataclass(frozen=True)
class IngestLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_future_ms: int = 5 * 60 * 1000        # beyond: dead-lettered as FUTURE_EVENT (clock skew)
    max_lateness_ms: int = 6 * 3600 * 1000    # beyond: forwarded flagged late, and counted
    dedupe_window: int = 500_000              # (operator, event_id) pairs remembered


@dataclass(slots=True)
class IngestResult:
    views: list[View] = field(default_factory=list)
    reason: str | None = None
    detail: str = ""
    duplicate: bool = False
    late: bool = False
    content_stripped: bool = False
    call: CallState | None = None   # a call_state event's record for fraudradar.calls (no views)

    @property
    def ok(self) -> bool:
        return self.reason is None and not self.duplicate


class DuplicateWindow:
    """Remembers the last ``size`` event ids per operator (insertion order, O(1)).

    The ids added since the last ``commit`` are kept aside: when the service's commit fails
    (exactly-once: its transaction aborted, nothing of it visible), ``rollback`` forgets them,
    so the same events, processed again from the committed offsets, are not taken for duplicates
    and dropped."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        # at most ``size``: an id inserted before the last ``size`` ones has left ``_seen`` already
        self._uncommitted: deque[tuple[str, str]] = deque(maxlen=size)

    def seen_before(self, operator: str, event_id: str) -> bool:
        key = (operator, event_id)
        if key in self._seen:
            return True
        self._seen[key] = None
        self._uncommitted.append(key)
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return False

    def commit(self) -> None:
        """The ids seen so far were committed with their outputs."""
        self._uncommitted.clear()

    def rollback(self) -> None:
        """Forget the ids seen since the last ``commit`` (their outputs were not committed)."""
        for key in self._uncommitted:
            self._seen.pop(key, None)
        self._uncommitted.clear()

    def __len__(self) -> int:
        return len(self._seen)


class IngestPipeline:
    def __init__(self, transformer: Transformer, limits: IngestLimits | None = None,
                 calls: CallTransformer | None = None) -> None:
        self.transformer = transformer
        region, regions = transformer.regions
        self.calls = calls or CallTransformer(transformer.pseudonymizer, None, region, regions)
        self.limits = limits or IngestLimits()
        self.duplicates = DuplicateWindow(self.limits.dedupe_window)

    def check(self, raw: bytes, now_ms: int | None) -> RawEvent | Rejected:
        """Everything ``process`` validates (contract, bounds, identifiers), without dedupe or output:
        what the batch push answers before it accepts an event."""
        event = decode(raw, self.limits.max_bytes)
        if isinstance(event, Rejected):
            return event
        if now_ms is not None and event.occurred_ms > now_ms + self.limits.max_future_ms:
            return Rejected(FUTURE_EVENT, "occurred_at is beyond the future bound")
        views = self._outputs(event, now_ms or 0, False)
        return views if isinstance(views, Rejected) else event

    def _outputs(self, event: RawEvent, ingested_ms: int, late: bool) -> list[View] | CallState | Rejected:
        if event.type == "call_state":
            return self.calls.transform(event, ingested_ms)
        return self.transformer.transform(event, ingested_ms, late)

    def process(self, raw: bytes, now_ms: int | None, ingested_ms: int | None = None) -> IngestResult:
        """``now_ms`` is the wall clock for the time bounds; None (replays) disables them."""
        event = decode(raw, self.limits.max_bytes)
        if isinstance(event, Rejected):
            return IngestResult(reason=event.reason, detail=event.detail)
        late = False
        if now_ms is not None:
            if event.occurred_ms > now_ms + self.limits.max_future_ms:
                return IngestResult(reason=FUTURE_EVENT, detail="occurred_at is beyond the future bound",
                                    content_stripped=event.content_stripped)
            late = event.occurred_ms < now_ms - self.limits.max_lateness_ms
        if self.duplicates.seen_before(event.operator, event.event_id):
            return IngestResult(duplicate=True, late=late, content_stripped=event.content_stripped)
        out = self._outputs(event, ingested_ms if ingested_ms is not None else (now_ms or 0), late)
        if isinstance(out, Rejected):
            return IngestResult(reason=out.reason, detail=out.detail, content_stripped=event.content_stripped)
        if isinstance(out, CallState):
            return IngestResult(late=late, content_stripped=event.content_stripped, call=out)
        return IngestResult(views=out, late=late, content_stripped=event.content_stripped)
