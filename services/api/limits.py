"""Per-partner limits: request rate (token bucket), daily quota, hourly lookup budget.

The lookup budget counts *distinct* numbers a partner looked up in the current clock hour; it
is the brake against enumeration (walking a number range through the lookup endpoint) and its
use ratio is the ``fraudradar_api_lookup_budget_used_ratio`` gauge the alert rules watch.

The daily quota and the lookup budget are shared across replicas: each replica counts in its
memory, publishes its counts to ``fraudradar.partner-state`` (``Usage`` records, about every
half second: ``ApiService``) and adds the other replicas' last published counts (``others``)
before it admits. Replicas can overshoot a limit together only by what they admit within one
publish interval plus the materialise delay. The same number looked up on two replicas counts
on both (stricter, never looser). The request rate (token bucket) stays per replica. The
figures may still be divided by ``divisor`` (``FRAUDRADAR_LIMITS_DIVISOR``, rounded up; 1 by
default and with shared counts there is no need for more). docs/api.md ("Limits with N
replicas").
Everything runs on the event loop thread; no locks needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from services.api.exceptions import QuotaExceeded, TooManyRequests
from services.api.metrics import BUDGET_RATIO, RATE_LIMITED
from services.api.partners import Partner

Clock = Callable[[], float]


@dataclass
class _PartnerCounters:
    tokens: float
    refilled_at: float
    per_second: float
    burst: float
    quota: int
    budget: int
    day: int = -1
    requests_today: int = 0
    hour: int = -1
    seen_this_hour: set[str] = field(default_factory=set)
    ratio_gauge: Any = None


class Limiter:
    """Checks and books one partner request; raises 429 errors with ``Retry-After``."""

    def __init__(
        self,
        clock: Clock = time.time,
        divisor: int = 1,
        others: Callable[[str, str, int], int] | None = None,
    ) -> None:
        if divisor < 1:
            raise ValueError("the limits divisor must be at least 1")
        self._clock = clock
        self._divisor = divisor
        self._counters: dict[str, _PartnerCounters] = {}
        # What the other replicas counted (partner, "quota"|"budget", window) -> count, from
        # fraudradar.partner-state; this replica's own counts go there through ``dirty``.
        self._others = others or (lambda _p, _k, _w: 0)
        self.dirty: set[tuple[str, str, int]] = set()

    def count(self, partner_id: str, kind: str, window: int) -> int:
        """This replica's count of a partner in a window (what it publishes)."""
        c = self._counters.get(partner_id)
        if c is None:
            return 0
        if kind == "quota":
            return c.requests_today if c.day == window else 0
        return len(c.seen_this_hour) if c.hour == window else 0

    def _get(self, partner: Partner, now: float) -> _PartnerCounters:
        counters = self._counters.get(partner.id)
        if counters is None:
            d = self._divisor
            burst = float(math.ceil(partner.rate.burst / d))
            counters = _PartnerCounters(
                tokens=burst,
                refilled_at=now,
                per_second=partner.rate.per_second / d,
                burst=burst,
                quota=math.ceil(partner.quota_per_day / d),
                budget=math.ceil(partner.lookup_budget_per_hour / d),
                ratio_gauge=BUDGET_RATIO.labels(partner.id),
            )
            self._counters[partner.id] = counters
        return counters

    def admit(self, partner: Partner) -> None:
        """Book one request against the rate limit and the daily quota."""
        now = self._clock()
        c = self._get(partner, now)
        c.tokens = min(c.burst, c.tokens + (now - c.refilled_at) * c.per_second)
        c.refilled_at = now
        day = int(now // 86400)
        if day != c.day:
            c.day, c.requests_today = day, 0
        if c.requests_today + self._others(partner.id, "quota", day) >= c.quota:
            RATE_LIMITED.labels(partner.id, "quota").inc()
            raise QuotaExceeded(int((day + 1) * 86400 - now) + 1)
        if c.tokens < 1.0:
            RATE_LIMITED.labels(partner.id, "rate").inc()
            raise TooManyRequests(math.ceil((1.0 - c.tokens) / c.per_second))
        c.tokens -= 1.0
        c.requests_today += 1
        self.dirty.add((partner.id, "quota", day))

    def spend_budget(self, partner: Partner, pseudonyms: Iterable[str]) -> None:
        """Book distinct numbers; refuse the whole request if they would exceed the hour's budget."""
        now = self._clock()
        c = self._get(partner, now)
        hour = int(now // 3600)
        if hour != c.hour:
            c.hour, c.seen_this_hour = hour, set()
        seen = c.seen_this_hour
        new = {p for p in pseudonyms if p not in seen}
        if not new:
            return
        elsewhere = self._others(partner.id, "budget", hour)
        if len(seen) + len(new) + elsewhere > c.budget:
            RATE_LIMITED.labels(partner.id, "budget").inc()
            c.ratio_gauge.set((len(seen) + elsewhere) / c.budget)
            raise QuotaExceeded(
                int((hour + 1) * 3600 - now) + 1, "Hourly budget of distinct numbers looked up is exhausted."
            )
        seen |= new
        self.dirty.add((partner.id, "budget", hour))
        c.ratio_gauge.set((len(seen) + elsewhere) / c.budget)


class AuthFailures:
    """Failed client authentications at the token endpoint, in buckets of their own.

    Two token buckets per failure: one per source address and one per claimed client id (known
    or not). A bucket holds ``burst`` failures and refills ``per_minute``; while either bucket of a
    request is empty the request is refused with 429 *before* any secret is checked (no scrypt,
    the same answer for known and unknown ids). Successful authentications never take from
    these buckets, and never from the partner's rate limit or quota before they succeed.

    Neither bucket may become a lockout: a source address that authenticated this client
    successfully before (within ``trusted_for_s``) draws on a bucket of its own for that client
    instead, so failures of others, at its client id or at its address (a shared NAT), never
    refuse it; its own guesses of that client's secret are limited the same way.
    Memory is bounded: the least recently used keys are forgotten first.
    """

    def __init__(
        self,
        *,
        burst: int,
        per_minute: float,
        clock: Clock = time.time,
        trusted_for_s: float = 7 * 24 * 3600,
        max_keys: int = 100_000,
    ) -> None:
        from collections import OrderedDict

        self.burst = float(burst)
        self.per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._good: OrderedDict[tuple[str, str], float] = OrderedDict()  # (client, source) -> until
        self._trusted_for_s = trusted_for_s
        self._max_keys = max_keys

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.per_second)

    def _keys(self, source: str, client_id: str | None, now: float) -> list[str]:
        """The buckets a request draws on: a source that authenticated this client before has
        one of its own for that client (so neither others' failures at its address nor at its
        client id can lock it out); anyone else the address's and the client id's."""
        if client_id and self._good.get((client_id, source), 0.0) > now:
            return [f"pair:{client_id}:{source}"]
        return [f"ip:{source}"] + ([f"client:{client_id}"] if client_id else [])

    def retry_after(self, source: str, client_id: str | None) -> int | None:
        """Seconds until this request may try again, or None when it may try now."""
        now = self._clock()
        levels = [self._level(k, now) for k in self._keys(source, client_id, now)]
        waits = [(1.0 - level) / self.per_second for level in levels if level < 1.0]
        return max(1, math.ceil(max(waits))) if waits else None

    def trusted(self, source: str, client_id: str | None) -> bool:
        """This source authenticated this client successfully within ``trusted_for_s``."""
        return bool(client_id) and self._good.get((client_id or "", source), 0.0) > self._clock()

    def failed(self, source: str, client_id: str | None) -> None:
        now = self._clock()
        for key in self._keys(source, client_id, now):
            self._buckets[key] = (max(0.0, self._level(key, now) - 1.0), now)
            self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def succeeded(self, source: str, client_id: str) -> None:
        self._good[(client_id, source)] = self._clock() + self._trusted_for_s
        self._good.move_to_end((client_id, source))
        while len(self._good) > self._max_keys:
            self._good.popitem(last=False)


class AuthLanes:
    """Threads that check client secrets (scrypt): ``trusted`` for sources that authenticated
    the client before, ``untrusted`` (one thread) for everyone else, so guesses queue only
    behind each other."""

    def __init__(self, trusted_threads: int = 4) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.trusted = ThreadPoolExecutor(trusted_threads, thread_name_prefix="auth-trusted")
        self.untrusted = ThreadPoolExecutor(1, thread_name_prefix="auth-untrusted")

    def close(self) -> None:
        self.trusted.shutdown(wait=False, cancel_futures=True)
        self.untrusted.shutdown(wait=False, cancel_futures=True)


class DailyCounter:
    """Per-partner count of one kind of write per UTC day, refused (429) past ``cap``."""

    def __init__(self, cap: int, what: str, clock: Clock = time.time) -> None:
        self.cap, self.what, self._clock = cap, what, clock
        self._counts: dict[str, tuple[int, int]] = {}  # partner -> (day, count)

    def take(self, partner: Partner, already: int = 0) -> None:
        """Book one; ``already`` is a count known from shared state (e.g. contests materialised)."""
        now = self._clock()
        day = int(now // 86400)
        seen_day, count = self._counts.get(partner.id, (day, 0))
        if seen_day != day:
            count = 0
        if max(count, already) >= self.cap:
            RATE_LIMITED.labels(partner.id, self.what).inc()
            raise QuotaExceeded(int((day + 1) * 86400 - now) + 1, f"Daily limit of {self.what} reached.")
        self._counts[partner.id] = (day, count + 1)
