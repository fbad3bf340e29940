"""Per-partner limits: request rate (token bucket), daily quota, hourly lookup budget.

The lookup budget counts *distinct* numbers a partner looked up in the current clock hour; it
is the brake against enumeration (walking a number range through the lookup endpoint) and its
use ratio is the ``fraudradar_api_lookup_budget_used_ratio`` gauge the alert rules watch.

Counters live in this process (no shared store). Each replica enforces the partner's figures
divided by ``divisor`` (``FRAUDRADAR_LIMITS_DIVISOR``, rounded up): with N replicas serving
behind a balancer a partner can get at most N x ceil(figure / divisor) in total, and at least
ceil(figure / divisor) when all its requests land on one replica. docs/api.md ("Limits with N
replicas") works through what that means for the enumeration budget.
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

    def __init__(self, clock: Clock = time.time, divisor: int = 1) -> None:
        if divisor < 1:
            raise ValueError("the limits divisor must be at least 1")
        self._clock = clock
        self._divisor = divisor
        self._counters: dict[str, _PartnerCounters] = {}

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
        if c.requests_today >= c.quota:
            RATE_LIMITED.labels(partner.id, "quota").inc()
            raise QuotaExceeded(int((day + 1) * 86400 - now) + 1)
        if c.tokens < 1.0:
            RATE_LIMITED.labels(partner.id, "rate").inc()
            raise TooManyRequests(math.ceil((1.0 - c.tokens) / c.per_second))
        c.tokens -= 1.0
        c.requests_today += 1

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
        if len(seen) + len(new) > c.budget:
            RATE_LIMITED.labels(partner.id, "budget").inc()
            c.ratio_gauge.set(len(seen) / c.budget)
            raise QuotaExceeded(
                int((hour + 1) * 3600 - now) + 1, "Hourly budget of distinct numbers looked up is exhausted."
            )
        seen |= new
        c.ratio_gauge.set(len(seen) / c.budget)
