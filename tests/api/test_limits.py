"""Per-replica limits and the divisor that makes the partners' figures cluster totals (unit,
no broker: an injected clock)."""

from __future__ import annotations

import pytest

from services.api.exceptions import QuotaExceeded, TooManyRequests
from services.api.limits import Limiter
from services.api.partners import Partner, RateLimit, hash_secret


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


_HASH = hash_secret("bank-x-secret-0123456789")


def partner(**kw: object) -> Partner:
    return Partner.model_validate({"id": "bank-x", "type": "bank", "client_secret_hash": _HASH, **kw})


def distinct_admitted(limiter: Limiter, p: Partner, tries: int) -> int:
    admitted = 0
    for i in range(tries):
        try:
            limiter.spend_budget(p, (f"pseudonym-{i}",))
            admitted += 1
        except QuotaExceeded:
            break
    return admitted


@pytest.mark.parametrize(("budget", "divisor", "share"), [(100, 1, 100), (100, 4, 25), (10, 3, 4), (2, 5, 1)])
def test_each_replica_admits_its_share_of_the_budget(budget: int, divisor: int, share: int) -> None:
    p = partner(lookup_budget_per_hour=budget)
    assert distinct_admitted(Limiter(Clock(), divisor), p, budget + 5) == share


def test_n_replicas_admit_at_most_n_shares_in_total() -> None:
    """The upper bound docs/api.md states: N x ceil(budget / d) distinct numbers per hour."""
    p, clock = partner(lookup_budget_per_hour=1000), Clock()
    replicas = [Limiter(clock, divisor=4) for _ in range(4)]
    assert sum(distinct_admitted(r, p, 2000) for r in replicas) == 1000


def test_rate_and_quota_are_divided_too() -> None:
    clock = Clock()
    p = partner(rate=RateLimit(per_second=10, burst=8), quota_per_day=12)
    limiter = Limiter(clock, divisor=2)
    for _ in range(4):  # burst 8 / 2
        limiter.admit(p)
    with pytest.raises(TooManyRequests) as exc:
        limiter.admit(p)
    assert exc.value.headers["Retry-After"] == "1"  # 5/s per replica
    clock.now += 10
    limiter.admit(p)
    limiter.admit(p)  # quota 12 / 2 = 6 per replica: the seventh today is refused
    with pytest.raises(QuotaExceeded):
        limiter.admit(p)


def test_divisor_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Limiter(Clock(), divisor=0)
