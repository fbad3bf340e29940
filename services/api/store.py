"""The materialised state one replica answers from: risk per entity, a window of alerts, and
the partner state (watch-lists, webhooks, overrides, contests, delivery cursors).

All mutation happens on the event loop thread (the materialiser hands decoded batches over),
so readers on that thread need no locks. The alert log keeps arrival order; a feed cursor is
the next offset per partition of ``fraudradar.alerts``, which means the same cursor works on
every replica (Kafka offsets are the same everywhere) and after restarts.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.api.exceptions import InvalidArgument
from services.api.partner_state import (
    AssertionUse,
    Contest,
    DeliveryCursor,
    Override,
    StateRecord,
    Usage,
    WatchEntry,
    Webhook,
)
from services.common.records import Alert, Risk


def parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 time (``Z`` or offset)."""
    return datetime.fromisoformat(text).timestamp()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class AlertEntry:
    partition: int
    offset: int
    alert: Alert
    raised_ts: float


@dataclass
class _PartitionIndex:
    offsets: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # absolute position in the log


# A feed cursor is the next offset per partition, ``partition-offset`` pairs joined by ``.``
# (``0-1520.1-1498.2-1533``). Every string of this form is a meaningful position: one past the
# end of what is there answers an empty page (and the same cursor back), so the pattern below is
# the whole contract and a well-formed cursor is never refused.
CURSOR_PATTERN = r"^[0-9]{1,4}-[0-9]{1,18}(?:\.[0-9]{1,4}-[0-9]{1,18})*$"
CURSOR_MAX_LENGTH = 4096
_CURSOR = re.compile(CURSOR_PATTERN.removesuffix("$") + r"\Z")


def encode_cursor(positions: dict[int, int]) -> str:
    """The cursor of ``positions``; ``0-0`` for the start (the empty map)."""
    if not positions:
        return "0-0"
    return ".".join(f"{p}-{o}" for p, o in sorted(positions.items()))


def decode_cursor(cursor: str) -> dict[int, int]:
    """Parse a feed cursor; raise ``InvalidArgument`` for anything malformed."""
    if len(cursor) > CURSOR_MAX_LENGTH or not _CURSOR.match(cursor):
        raise InvalidArgument("cursor is not valid.")
    positions: dict[int, int] = {}
    for pair in cursor.split("."):
        partition, _, offset = pair.partition("-")
        positions[int(partition)] = max(positions.get(int(partition), 0), int(offset))
    return positions


class AlertIds:
    """Alert ids seen recently (bounded, oldest forgotten first).

    The scorer is at-least-once: after a crash or a rebalance it writes some alerts again, with
    the same deterministic ``alert_id`` at a new offset. The feed, the stream and webhooks must
    show each alert once, so the materialiser drops an id it has already seen.
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._seen: dict[str, None] = {}

    def first_time(self, alert_id: str) -> bool:
        if alert_id in self._seen:
            return False
        self._seen[alert_id] = None
        if len(self._seen) > self.capacity:
            del self._seen[next(iter(self._seen))]
        return True


def dedupe_alert_ids(alert_ids: Iterator[str] | list[str]) -> Iterator[str]:
    """The ids the API materialises from ``alert_ids`` in log order (what partners see)."""
    seen = AlertIds()
    return (alert_id for alert_id in alert_ids if seen.first_time(alert_id))


class AlertLog:
    """Alerts in arrival order within the retention window, pageable by partition offsets."""

    def __init__(self, retention_s: float) -> None:
        self.retention_s = retention_s
        self._entries: list[AlertEntry] = []
        self._base = 0  # absolute position of _entries[0]
        self._index: dict[int, _PartitionIndex] = {}
        self.end: dict[int, int] = {}  # next offset per partition seen so far
        self.by_id: dict[str, AlertEntry] = {}  # alert id -> entry (inside the window)
        self.by_entity: dict[str, list[AlertEntry]] = {}  # "type:entity" -> its entries

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entry: AlertEntry) -> None:
        if entry.offset < self.end.get(entry.partition, 0):
            return  # replayed record (materialiser restart from an older position)
        position = self._base + len(self._entries)
        self._entries.append(entry)
        idx = self._index.setdefault(entry.partition, _PartitionIndex())
        idx.offsets.append(entry.offset)
        idx.positions.append(position)
        self.end[entry.partition] = entry.offset + 1
        self.by_id[entry.alert.alert_id] = entry
        key = f"{entry.alert.entity_type}:{entry.alert.entity}"
        self.by_entity.setdefault(key, []).append(entry)

    def evict(self, now: float) -> None:
        """Drop alerts older than the retention window (by their event time)."""
        horizon = now - self.retention_s
        drop = 0
        for entry in self._entries:
            if entry.raised_ts >= horizon:
                break
            drop += 1
        if drop == 0:
            return
        for entry in self._entries[:drop]:
            self.by_id.pop(entry.alert.alert_id, None)
            key = f"{entry.alert.entity_type}:{entry.alert.entity}"
            kept = [e for e in self.by_entity.get(key, []) if e is not entry]
            if kept:
                self.by_entity[key] = kept
            else:
                self.by_entity.pop(key, None)
        self._entries = self._entries[drop:]
        self._base += drop
        for idx in self._index.values():
            cut = bisect.bisect_left(idx.positions, self._base)
            if cut:
                del idx.offsets[:cut]
                del idx.positions[:cut]

    def since(self, cursor: dict[int, int]) -> Iterator[AlertEntry]:
        """Entries after ``cursor`` in arrival order (per partition: offset order)."""
        start = self._base + len(self._entries)
        for partition, idx in self._index.items():
            i = bisect.bisect_left(idx.offsets, cursor.get(partition, 0))
            if i < len(idx.positions):
                start = min(start, idx.positions[i])
        for k in range(start - self._base, len(self._entries)):
            entry = self._entries[k]
            if entry.offset >= cursor.get(entry.partition, 0):
                yield entry

    def page(
        self,
        cursor: dict[int, int],
        limit: int,
        visible: Callable[[AlertEntry], bool],
        scan_max: int = 50_000,
    ) -> tuple[list[AlertEntry], dict[int, int]]:
        """Up to ``limit`` visible entries after ``cursor`` and the cursor after them.

        Invisible entries are stepped over (and the cursor moves past them), so a partner that
        sees few alerts does not rescan everyone else's on every call.
        """
        items: list[AlertEntry] = []
        nxt = dict(cursor)
        exhausted = True
        for scanned, entry in enumerate(self.since(cursor)):
            if len(items) >= limit or scanned >= scan_max:
                exhausted = False
                break
            nxt[entry.partition] = entry.offset + 1
            if visible(entry):
                items.append(entry)
        if exhausted:
            for partition, end in self.end.items():
                nxt[partition] = max(nxt.get(partition, 0), end)
        return items, nxt


class PartnerStateStore:
    """Watch-lists, webhooks, overrides, contests and delivery cursors, indexed for lookups."""

    def __init__(self) -> None:
        self.by_key: dict[str, StateRecord] = {}
        self.watch: dict[str, dict[str, WatchEntry]] = {}  # partner -> entry id -> entry
        self.watchers: dict[str, dict[tuple[str, str], WatchEntry]] = {}  # "type:entity" -> (partner, id)
        self.webhooks: dict[str, dict[str, Webhook]] = {}  # partner -> id -> webhook
        self.overrides: dict[str, Override] = {}  # id -> override
        self.overrides_by_entity: dict[str, dict[str, Override]] = {}
        self.contests: dict[str, Contest] = {}
        self.cursors: dict[str, dict[str, int]] = {}
        # (partner, kind, window) -> replica -> count (every replica's, this one's included)
        self.usage: dict[tuple[str, str, int], dict[str, int]] = {}
        self.assertions: dict[str, float] = {}  # "partner:jti" -> expiry (epoch s)

    def apply(self, key: str, record: StateRecord | None) -> None:
        old = self.by_key.pop(key, None)
        if old is not None:
            self._unindex(old)
        if record is not None:
            self.by_key[key] = record
            self._index(record)

    def _index(self, r: StateRecord) -> None:
        if isinstance(r, WatchEntry):
            self.watch.setdefault(r.partner, {})[r.entry_id] = r
            self.watchers.setdefault(f"{r.entity_type}:{r.entity}", {})[(r.partner, r.entry_id)] = r
        elif isinstance(r, Webhook):
            self.webhooks.setdefault(r.partner, {})[r.webhook_id] = r
        elif isinstance(r, Override):
            self.overrides[r.override_id] = r
            self.overrides_by_entity.setdefault(f"{r.entity_type}:{r.entity}", {})[r.override_id] = r
        elif isinstance(r, Contest):
            self.contests[r.contest_id] = r
        elif isinstance(r, DeliveryCursor):
            self.cursors[r.webhook_id] = dict(r.positions)
        elif isinstance(r, Usage):
            self.usage.setdefault((r.partner, r.kind, r.window), {})[r.replica] = r.count
        elif isinstance(r, AssertionUse):
            self.assertions[f"{r.partner}:{r.jti}"] = r.expires_at

    def _unindex(self, r: StateRecord) -> None:
        if isinstance(r, WatchEntry):
            self.watch.get(r.partner, {}).pop(r.entry_id, None)
            watchers = self.watchers.get(f"{r.entity_type}:{r.entity}")
            if watchers is not None:
                watchers.pop((r.partner, r.entry_id), None)
                if not watchers:
                    del self.watchers[f"{r.entity_type}:{r.entity}"]
        elif isinstance(r, Webhook):
            self.webhooks.get(r.partner, {}).pop(r.webhook_id, None)
        elif isinstance(r, Override):
            self.overrides.pop(r.override_id, None)
            self.overrides_by_entity.get(f"{r.entity_type}:{r.entity}", {}).pop(r.override_id, None)
        elif isinstance(r, Contest):
            self.contests.pop(r.contest_id, None)
        elif isinstance(r, DeliveryCursor):
            self.cursors.pop(r.webhook_id, None)
        elif isinstance(r, Usage):
            counts = self.usage.get((r.partner, r.kind, r.window))
            if counts is not None:
                counts.pop(r.replica, None)
                if not counts:
                    del self.usage[(r.partner, r.kind, r.window)]
        elif isinstance(r, AssertionUse):
            self.assertions.pop(f"{r.partner}:{r.jti}", None)

    def others_usage(self, partner: str, kind: str, window: int, replica: str) -> int:
        """What the other replicas counted for a partner in a window."""
        counts = self.usage.get((partner, kind, window))
        return sum(n for r, n in counts.items() if r != replica) if counts else 0

    def active_override(self, entity_key: str, now: float) -> Override | None:
        """The newest unexpired override of an entity, if any."""
        best: Override | None = None
        for override in self.overrides_by_entity.get(entity_key, {}).values():
            if parse_time(override.expires_at) > now and (
                best is None or override.created_at > best.created_at
            ):
                best = override
        return best

    def is_watched_by(self, partner: str, entity_key: str, before: float | None = None) -> list[WatchEntry]:
        """The partner's entries of an entity; with ``before``: only those added at or before it
        (a watch-list never shows an alert raised before its entry existed)."""
        return [
            e
            for (p, _), e in self.watchers.get(entity_key, {}).items()
            if p == partner and (before is None or parse_time(e.created_at) <= before)
        ]


class Contacts:
    """Which entities each partner looked up (or watched) recently, by time: a partner may
    report on or contest only a number it had to do with (docs/api.md "Reports and contests").

    Per replica, bounded (oldest contact forgotten first), entries older than ``window_s``
    do not count."""

    def __init__(self, window_s: float, max_items: int = 2_000_000) -> None:
        from collections import OrderedDict

        self.window_s = window_s
        self.max_items = max_items
        self._at: OrderedDict[tuple[str, str], float] = OrderedDict()

    def touch(self, partner: str, entity_key: str, now: float) -> None:
        key = (partner, entity_key)
        self._at[key] = now
        self._at.move_to_end(key)
        if len(self._at) > self.max_items:
            self._at.popitem(last=False)

    def had(self, partner: str, entity_key: str, now: float) -> bool:
        at = self._at.get((partner, entity_key))
        return at is not None and now - at <= self.window_s


class RiskStore:
    """Latest risk per ``type:pseudonym`` (the compacted topic, tombstones removed)."""

    def __init__(self) -> None:
        self._risk: dict[str, Risk] = {}

    def __len__(self) -> int:
        return len(self._risk)

    def get(self, key: str) -> Risk | None:
        return self._risk.get(key)

    def put(self, key: str, risk: Risk | None) -> Risk | None:
        if risk is None:
            return self._risk.pop(key, None)
        old = self._risk.get(key)
        self._risk[key] = risk
        return old
