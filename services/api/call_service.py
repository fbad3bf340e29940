"""The call-state check and the banks' pre-announcements, on top of the live call state.

``CallService`` owns the ``CallStateStore`` and its feed; the routes ask it two things:
``check`` (is this subscriber in a risky call, or was one within the window) and ``announce``
(a bank announces an outbound call). It is part of ``ApiService`` (``service.calls``) and runs
on the event loop thread. Answers carry a level, reason codes and timings, never the
counterpart's number or pseudonym.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException
from kafka.errors import KafkaError

from services.api.call_feed import CallFeed
from services.api.call_state import REASONS, CallStateStore, LiveCall, counterpart_class, verdict
from services.api.exceptions import PermissionDenied, Unavailable
from services.api.first_seen import FirstSeenFeed, FirstSeenIndex
from services.common import topics
from services.common.call_records import CallAnnouncement, CallState, encode_call_state
from services.common.normalise import IdentifierError, normalise_number
from services.common.protected_numbers import ProtectedNumbers

if TYPE_CHECKING:
    from services.api.config import ApiSettings
    from services.api.identifiers import EntityResolver
    from services.api.kafka_io import Producer

_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CallService:
    def __init__(self, settings: ApiSettings, resolver: EntityResolver, level_of: Callable[[str], str],
                 clock: Callable[[], float] = time.time,
                 producer: Callable[[], Producer | None] = lambda: None) -> None:
        self.settings = settings
        self.resolver = resolver
        self.clock = clock
        self._level_of = level_of
        self._producer = producer
        self.topic = settings.topic(topics.CALLS)
        self.store = CallStateStore(
            retain_ms=settings.call_window_max_min * 60_000, max_call_ms=settings.call_max_s * 1000,
            contacts_ms=settings.call_lookback_s * 1000, max_subscribers=settings.call_max_subscribers,
        )
        self.first_seen = FirstSeenIndex(max_items=settings.first_seen_max)
        self.first_seen_topic = settings.topic(topics.FIRST_SEEN)
        self.first_seen_feed: FirstSeenFeed | None = None
        self.protected = ProtectedNumbers.load(settings.protected_numbers_file, settings.default_region)
        self.feed: CallFeed | None = None
        self.on_new_call: Callable[[int, int, CallState, LiveCall], None] | None = None
        # pseudonym -> the bank's own number, to tell a bank which of its numbers was spoofed
        self._own: dict[str, str] = {resolver.number(n): n for n in self.protected.owners}
        self._evictor: asyncio.Task[None] | None = None

    def start(self, kafka: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self.feed = CallFeed(kafka, self.topic, self.store, self.settings.call_lookback_s, loop)
        self.feed.on_new_call = self.on_new_call
        self.feed.start()
        self.first_seen_feed = FirstSeenFeed(kafka, self.first_seen_topic, self.first_seen, loop)
        self.first_seen_feed.start()
        self._evictor = asyncio.create_task(self._evict_loop())

    async def stop(self) -> None:
        if self._evictor is not None:
            self._evictor.cancel()
        if self.feed is not None:
            await asyncio.to_thread(self.feed.stop)
        if self.first_seen_feed is not None:
            await asyncio.to_thread(self.first_seen_feed.stop)

    async def _evict_loop(self) -> None:
        while True:
            await asyncio.sleep(30)
            now_ms = int(self.clock() * 1000)
            self.store.evict(now_ms)
            self.first_seen.evict(now_ms)

    def level_of(self, pseudonym: str) -> str:
        return self._level_of(pseudonym)

    def judge(self, call: LiveCall, now_ms: int) -> tuple[str, list[str]]:
        """(level, reason codes) of one call now: the counterpart's risk and first sighting as of now."""
        return verdict(call, self._level_of, lambda number: self.first_seen.is_new(number, now_ms))

    def own_number(self, owner: str, pseudonym: str) -> str | None:
        number = self._own.get(pseudonym)
        return number if number is not None and self.protected.owner_of(number) == owner else None

    @property
    def ready(self) -> bool:
        return all(f is not None and f.ready.is_set() and f.failed is None
                   for f in (self.feed, self.first_seen_feed))

    def require_ready(self) -> None:
        if not self.ready:
            raise Unavailable("The live call state is not rebuilt yet.")

    def check(self, subscriber: str, window_min: int) -> tuple[dict[str, Any], str, str]:
        """(answer, level, counterpart class) for one subscriber pseudonym."""
        now_ms = int(self.clock() * 1000)
        calls = self.store.recent(subscriber, now_ms, window_min * 60_000)
        if not calls:
            return {"status": "NO_CALL", "riskLevel": "none", "reasons": []}, "none", "none"
        judged = [(self.judge(c, now_ms), c) for c in calls]
        (level, codes), call = max(judged, key=lambda j: (_RANK[j[0][0]], j[1].ended_ms is None,
                                                            j[1].ended_ms or j[1].started_ms))
        in_progress = call.ended_ms is None
        answer: dict[str, Any] = {
            "status": "IN_CALL" if in_progress else "RECENT_CALL",
            "startedAt": _iso(call.started_ms),
            "answered": call.answered_ms is not None or bool(call.duration_s),
            "durationSeconds": _duration(call, now_ms),
            "riskLevel": level,
            "reasons": [{"code": code, "text": REASONS[code][1]} for code in codes],
        }
        if not in_progress and call.ended_ms is not None:
            answer["endedAt"] = _iso(call.ended_ms)
        return answer, level, counterpart_class(call, codes)

    async def announce(self, bank: str, calling: str, called: str, ttl_s: int) -> dict[str, Any]:
        """Register a bank's outbound call; the calling number must be one of the bank's.

        Written to ``fraudradar.calls`` under the called subscriber's key (acknowledged before
        the answer), so every replica applies it, in order with that subscriber's call steps,
        and a restarted replica replays it; applied here at once as well (read-your-writes)."""
        try:
            calling_value = normalise_number(calling, self.settings.default_region).value
        except IdentifierError as exc:
            raise PermissionDenied("callingParticipant is not a number registered to your organisation.") from exc
        if self.protected.owner_of(calling_value) != bank:
            raise PermissionDenied("callingParticipant is not a number registered to your organisation.")
        now_ms = int(self.clock() * 1000)
        expires_ms = now_ms + min(ttl_s, self.settings.announce_ttl_max_s) * 1000
        record = CallAnnouncement(bank, self.resolver.number(called), self.resolver.number(calling), now_ms,
                                  expires_ms)
        producer = self._producer()
        if producer is not None:
            try:
                await asyncio.to_thread(producer.send_and_wait, self.topic, record.subscriber,
                                        encode_call_state(record))
            except (KafkaError, KafkaException) as exc:
                raise Unavailable("The announcement could not be recorded; retry.") from exc
        self.store.announcements.add(bank, record.subscriber, record.calling, expires_ms)
        return {"preAnnouncementId": str(uuid.uuid4()), "expiresAt": _iso(expires_ms)}


def _duration(call: LiveCall, now_ms: int) -> int:
    """Seconds talking (answered) or ringing so far; the reported duration once ended."""
    if call.ended_ms is not None:
        return int(call.duration_s or 0)
    since = call.answered_ms if call.answered_ms is not None else call.started_ms
    return max(0, (now_ms - since) // 1000)
