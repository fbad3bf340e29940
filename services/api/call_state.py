"""Live call state per subscriber, the pre-announcements of banks, and the risk verdict of a call.

The API materialises ``fraudradar.calls`` (``call_feed.py``) into ``CallStateStore``: per
subscriber pseudonym, the calls in progress and those that ended within the longest check
window, each with the counterpart's class. Everything is a pseudonym or a class computed at
ingest; the store never holds a number in clear and an answer never carries the counterpart
(``verdict`` returns a level and reason codes only).

Bounds: at most ``max_subscribers`` subscribers (least recently changed dropped first, counted),
at most ``MAX_CALLS_PER_SUBSCRIBER`` calls each; an ended call is dropped ``retain_ms`` after
its end, a call whose end never arrived ``max_call_ms`` after its start; contacts (counterparts
a subscriber spoke with) are kept ``contacts_ms`` and at most ``MAX_CONTACTS`` per subscriber.
Whether the network first saw a counterpart within the last day is not held here: ``verdict``
asks the first-seen index (``first_seen.py``) at check time.

Spoofing: a call presenting a protected number (``cli_owner``) is ``BANK_CLI_SPOOF`` at its
first step when the number is do-not-originate, or when no live pre-announcement of the owning
bank matches (bank, called subscriber, calling number) and the call entered from an
international route (banks originate on domestic routes). An announced call (the owning bank
vouches for it) is not ``INTERNATIONAL_DOMESTIC_CLI`` either: a bank may place calls through a
contact centre abroad. Everything here runs on the event loop thread.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from services.common.call_records import CallState
from services.common.protected_numbers import DNO_OWNER
from services.common.records import LEVELS

MAX_CALLS_PER_SUBSCRIBER = 8
MAX_CONTACTS = 32
_RANK: dict[str, int] = {level: i for i, level in enumerate(LEVELS)}

# reason code -> (level, partner text). Texts never name the counterpart.
REASONS: dict[str, tuple[str, str]] = {
    "BANK_CLI_SPOOF": ("critical", "The call presents a bank's number that the bank did not announce, "
                                   "from a route the bank does not use."),
    "FLAGGED_COUNTERPART": ("high", "The other party's number is flagged for fraud."),
    "INTERNATIONAL_DOMESTIC_CLI": ("high", "The call entered from an international route while presenting "
                                           "a domestic number."),
    # context, not a verdict: new subscriptions, visitors and new contact-centre lines are first seen too
    "COUNTERPART_FIRST_SEEN_TODAY": ("low", "The other party's number was first seen on the network within "
                                            "the last 24 hours."),
}


@dataclass(slots=True)
class LiveCall:
    call: str
    counterpart: str
    cli: str                     # pseudonym of the presented CLI (the counterpart's when the same)
    cli_owner: str | None
    cli_domestic: bool
    international: bool
    forwarded: bool
    started_ms: int
    answered_ms: int | None = None
    ended_ms: int | None = None
    duration_s: float | None = None
    spoof: bool = False
    announced: bool = False      # a live pre-announcement of the CLI's owner matched: the bank vouches for it
    known_contact: bool = False
    first_offset: int = -1       # offset of the step that told the push about this call (-1: not yet)


@dataclass
class _Subscriber:
    changed_ms: int = 0          # last step (event time) or last eviction pass that kept it
    calls: dict[str, LiveCall] = field(default_factory=dict)
    contacts: OrderedDict[str, int] = field(default_factory=OrderedDict)   # counterpart -> last seen ms


class Announcements:
    """Banks' pre-announced outbound calls: (bank, called pseudonym, calling pseudonym) → expiry ms."""

    def __init__(self, max_items: int = 1_000_000) -> None:
        self._live: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._max = max_items

    def add(self, bank: str, called: str, calling: str, expires_ms: int) -> None:
        key = (bank, called, calling)
        self._live.pop(key, None)
        self._live[key] = expires_ms
        while len(self._live) > self._max:
            self._live.popitem(last=False)

    def matches(self, bank: str, called: str, calling: str, at_ms: int) -> bool:
        expires = self._live.get((bank, called, calling))
        return expires is not None and expires >= at_ms

    def evict(self, now_ms: int) -> None:
        """Drop expired announcements from the oldest on, up to the first live one (bounded work;
        ``matches`` checks the expiry anyway)."""
        while self._live:
            key, expires = next(iter(self._live.items()))
            if expires >= now_ms:
                return
            del self._live[key]

    def __len__(self) -> int:
        return len(self._live)


class CallStateStore:
    def __init__(self, *, retain_ms: int, max_call_ms: int, contacts_ms: int, max_subscribers: int,
                 announcements: Announcements | None = None) -> None:
        self.retain_ms = retain_ms
        self.max_call_ms = max_call_ms
        self.contacts_ms = contacts_ms
        self.max_subscribers = max_subscribers
        self.announcements = announcements or Announcements()
        self._subs: OrderedDict[str, _Subscriber] = OrderedDict()
        self.dropped = 0          # subscribers dropped by the size bound (metric)

    def __len__(self) -> int:
        return len(self._subs)

    def calls(self) -> int:
        return sum(len(s.calls) for s in self._subs.values())

    def apply(self, rec: CallState) -> LiveCall | None:
        sub = self._subs.get(rec.subscriber)
        if sub is None:
            sub = self._subs[rec.subscriber] = _Subscriber()
            while len(self._subs) > self.max_subscribers:
                self._subs.popitem(last=False)
                self.dropped += 1
        else:
            self._subs.move_to_end(rec.subscriber)
        sub.changed_ms = max(sub.changed_ms, rec.occurred_ms)
        call = sub.calls.get(rec.call)
        if call is None:
            last = sub.contacts.get(rec.counterpart)
            call = LiveCall(rec.call, rec.counterpart, rec.cli or rec.counterpart, rec.cli_owner, rec.cli_domestic,
                            rec.international, rec.forwarded, rec.occurred_ms,
                            known_contact=last is not None and rec.occurred_ms - last <= self.contacts_ms)
            call.announced = rec.cli_owner is not None and self.announcements.matches(
                rec.cli_owner, rec.subscriber, call.cli, rec.occurred_ms)
            call.spoof = self._spoofed(rec, call)
            sub.calls[rec.call] = call
            if len(sub.calls) > MAX_CALLS_PER_SUBSCRIBER:
                oldest = min(sub.calls.values(), key=lambda c: (c.ended_ms is None, c.started_ms))
                del sub.calls[oldest.call]
        if rec.state == "started":
            call.started_ms = min(call.started_ms, rec.occurred_ms)
        elif rec.state == "answered":
            call.answered_ms = rec.occurred_ms
        else:
            call.ended_ms = rec.occurred_ms
            call.duration_s = rec.duration_s
            if (rec.duration_s or 0) > 0:
                sub.contacts.pop(rec.counterpart, None)
                sub.contacts[rec.counterpart] = rec.occurred_ms
                while len(sub.contacts) > MAX_CONTACTS:
                    sub.contacts.popitem(last=False)
        return call

    def _spoofed(self, rec: CallState, call: LiveCall) -> bool:
        owner = rec.cli_owner
        if owner is None:
            return False
        if owner == DNO_OWNER:
            return True
        return not call.announced and rec.international

    def recent(self, subscriber: str, now_ms: int, window_ms: int) -> list[LiveCall]:
        """Calls in progress now, and calls that ended within ``window_ms``."""
        sub = self._subs.get(subscriber)
        if sub is None:
            return []
        out = []
        for call in sub.calls.values():
            if call.ended_ms is None:
                if now_ms - call.started_ms <= self.max_call_ms:
                    out.append(call)
            elif now_ms - call.ended_ms <= window_ms:
                out.append(call)
        return out

    def evict(self, now_ms: int, max_steps: int = 50_000) -> int:
        """Drop what no check window can reach any more; returns the calls dropped.

        Subscribers are ordered by their last change, so only those unchanged for ``retain_ms``
        are looked at, oldest first, at most ``max_steps`` per call (the event loop never
        stalls on a large state); one that still has a call in progress or contacts is looked at
        again ``retain_ms`` later. What is not evicted yet is never answered: ``recent``
        applies the same bounds."""
        dropped = steps = 0
        while self._subs and steps < max_steps:
            key, sub = next(iter(self._subs.items()))
            if now_ms - sub.changed_ms <= self.retain_ms:
                break
            steps += 1
            for call in list(sub.calls.values()):
                end = call.ended_ms
                if (end is not None and now_ms - end > self.retain_ms) or (
                        end is None and now_ms - call.started_ms > self.max_call_ms):
                    del sub.calls[call.call]
                    dropped += 1
            while sub.contacts and now_ms - next(iter(sub.contacts.values())) > self.contacts_ms:
                sub.contacts.popitem(last=False)
            if not sub.calls and not sub.contacts:
                del self._subs[key]
            else:
                sub.changed_ms = now_ms
                self._subs.move_to_end(key)
        self.announcements.evict(now_ms)
        return dropped


def verdict(call: LiveCall, level_of: Callable[[str], str],
            first_seen: Callable[[str], bool] = lambda _: False) -> tuple[str, list[str]]:
    """(level, reason codes) of one call; ``level_of(pseudonym)`` is the number's current risk level,
    ``first_seen(pseudonym)`` whether the network first saw the number within the last day."""
    reasons: list[str] = []
    level = "none"
    if call.spoof:
        reasons.append("BANK_CLI_SPOOF")
        level = "critical"
    flagged = max((level_of(call.counterpart), level_of(call.cli)), key=_RANK.__getitem__)
    if _RANK[flagged] >= _RANK["medium"]:
        reasons.append("FLAGGED_COUNTERPART")
        level = max(level, flagged, key=_RANK.__getitem__)
    if call.international and call.cli_domestic and not (call.forwarded or call.spoof or call.announced):
        reasons.append("INTERNATIONAL_DOMESTIC_CLI")
        level = max(level, "high", key=_RANK.__getitem__)
    if not call.announced and first_seen(call.counterpart):
        reasons.append("COUNTERPART_FIRST_SEEN_TODAY")
        level = max(level, REASONS["COUNTERPART_FIRST_SEEN_TODAY"][0], key=_RANK.__getitem__)
    return level, reasons


def counterpart_class(call: LiveCall, reasons: list[str]) -> str:
    """The counterpart's class (docs/api.md): for metrics and the audit, never its identity."""
    if "FLAGGED_COUNTERPART" in reasons:
        return "flagged"
    if call.cli_owner is not None:
        return "protected_bank_cli"
    if "INTERNATIONAL_DOMESTIC_CLI" in reasons:
        return "international_domestic_cli"
    if "COUNTERPART_FIRST_SEEN_TODAY" in reasons:
        return "first_seen_today"
    return "known_contact" if call.known_contact else "unknown"
