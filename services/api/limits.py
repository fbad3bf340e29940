"""Per-partner limits: request rate (token bucket), daily quota, hourly lookup budget.

The lookup budget counts *distinct* numbers a partner looked up in the current clock hour; it
is the brake against enumeration (walking a number range through the lookup endpoint) and its
use ratio is the ``fraudradar_api_lookup_budget_used_ratio`` gauge the alert rules watch.
Counters live in this process: with N replicas behind a load balancer a partner gets up to N
times the configured figures, so configure ``rate``/``quota``/``budget`` per replica.
Everything runs on the event loop thread; no locks needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from services.api.exceptions import QuotaExceeded, TooManyRequests
from services.api.metrics import BUDGET_RATIO, RATE_LIMITED
from services.api.partners import Partner

Clock = Callable[[], float]


@dataclass
class _PartnerCounters:
    tokens: float
    refilled_at: float
    day: int = -1
    requests_today: int = 0
    hour: int = -1
    seen_this_hour: set[str] = field(default_factory=set)


class Limiter:
    """Checks and books one partner request; raises 429 errors with ``Retry-After``."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._counters: dict[str, _PartnerCounters] = {}

    def _get(self, partner: Partner, now: float) -> _PartnerCounters:
        counters = self._counters.get(partner.id)
        if counters is None:
            counters = _PartnerCounters(tokens=float(partner.rate.burst), refilled_at=now)
            self._counters[partner.id] = counters
        return counters

    def admit(self, partner: Partner) -> None:
        """Book one request against the rate limit and the daily quota."""
        now = self._clock()
        c = self._get(partner, now)
        c.tokens = min(float(partner.rate.burst), c.tokens + (now - c.refilled_at) * partner.rate.per_second)
        c.refilled_at = now
        day = int(now // 86400)
        if day != c.day:
            c.day, c.requests_today = day, 0
        if c.requests_today >= partner.quota_per_day:
            RATE_LIMITED.labels(partner.id, "quota").inc()
            raise QuotaExceeded(int((day + 1) * 86400 - now) + 1)
        if c.tokens < 1.0:
            RATE_LIMITED.labels(partner.id, "rate").inc()
            raise TooManyRequests(math.ceil((1.0 - c.tokens) / partner.rate.per_second))
        c.tokens -= 1.0
        c.requests_today += 1

    def spend_budget(self, partner: Partner, pseudonyms: Iterable[str]) -> None:
        """Book distinct numbers; refuse the whole request if they would exceed the hour's budget."""
        now = self._clock()
        c = self._get(partner, now)
        hour = int(now // 3600)
        if hour != c.hour:
            c.hour, c.seen_this_hour = hour, set()
        new = {p for p in pseudonyms if p not in c.seen_this_hour}
        if len(c.seen_this_hour) + len(new) > partner.lookup_budget_per_hour:
            RATE_LIMITED.labels(partner.id, "budget").inc()
            BUDGET_RATIO.labels(partner.id).set(len(c.seen_this_hour) / partner.lookup_budget_per_hour)
            raise QuotaExceeded(
                int((hour + 1) * 3600 - now) + 1, "Hourly budget of distinct numbers looked up is exhausted."
            )
        c.seen_this_hour |= new
        BUDGET_RATIO.labels(partner.id).set(len(c.seen_this_hour) / partner.lookup_budget_per_hour)
