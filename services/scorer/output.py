"""What the scorer's objects hand back: ``EngineOutput`` and the time formats of its records.

Shared by the engine, verdicts, links and the sweep (and read by the service and the
backtest), so that none of them imports another to learn the shape of an output.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from services.common.records import Alert, EntityType, Link, Risk

# Entity records hold event seconds as uint32 (1970-01-01 .. 2106-02-07). Valid views outside
# that span (ingest forwards far-past events, flagged late) are clamped into it, not a crash.
EVENT_MS_MAX = (2**32 - 1) * 1000


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_s(seconds: float) -> str:
    return iso_ms(int(seconds) * 1000)


class EngineOutput:
    """What one view produced. ``risk``/``alerts`` for the view's entity; sweeps add the rest.

    Allocated once per view, so the containers default to shared empty tuples and the engine
    replaces them with lists only when it has something to put in them.
    """

    __slots__ = ("alerts", "entity", "entity_type", "first_seen_ms", "links", "model_scores", "risk", "risk_updates",
                 "score", "skipped", "tombstones")

    def __init__(self, entity_type: EntityType, entity: str, score: int, *, skipped: bool = False) -> None:
        self.entity_type = entity_type
        self.entity = entity
        self.score = score
        self.risk: Risk | None = None
        self.alerts: Sequence[Alert] = ()
        # flags that expired or entities forgotten during a sweep this view triggered
        self.tombstones: Sequence[tuple[EntityType, str]] = ()
        self.risk_updates: Sequence[Risk] = ()
        # numbers seen acting on this (flagged) device: for fraudradar.links → ``Links.apply``
        self.links: Sequence[Link] = ()
        self.skipped = skipped               # already applied (replay): nothing to emit
        self.model_scores: dict[str, float] = _NO_SCORES   # calibrated percentile per detector (read-only)
        self.first_seen_ms = 0               # a number seen for the first time: its event time (fraudradar.first-seen)

    @property
    def emits(self) -> bool:
        """Anything for the service to send or observe."""
        return bool(self.risk is not None or self.alerts or self.model_scores or self.tombstones
                    or self.risk_updates or self.links or self.first_seen_ms)


_NO_SCORES: dict[str, float] = {}
