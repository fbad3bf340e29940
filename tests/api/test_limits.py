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


def _gauge(partner_id: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("fraudradar_api_lookup_budget_used_ratio", {"partner": partner_id})
    assert value is not None, "the budget gauge is missing"
    return value


def _rate_limited(partner_id: str, limit: str) -> float:
    from prometheus_client import REGISTRY

    labels = {"partner": partner_id, "limit": limit}
    return REGISTRY.get_sample_value("fraudradar_api_rate_limited_total", labels) or 0.0


def test_tokens_refill_at_the_rate_up_to_the_burst() -> None:
    clock = Clock()
    p = partner(id="rate-x", rate=RateLimit(per_second=2, burst=3), quota_per_day=1000)
    limiter = Limiter(clock)
    before = _rate_limited("rate-x", "rate")
    for _ in range(3):
        limiter.admit(p)
    with pytest.raises(TooManyRequests) as exc:
        limiter.admit(p)
    assert type(exc.value) is TooManyRequests and exc.value.headers["Retry-After"] == "1"
    assert _rate_limited("rate-x", "rate") == before + 1
    clock.now += 0.5                          # one token back at 2/s
    limiter.admit(p)
    with pytest.raises(TooManyRequests):
        limiter.admit(p)
    clock.now += 100                          # a long pause refills to the burst, not beyond
    for _ in range(3):
        limiter.admit(p)
    with pytest.raises(TooManyRequests):
        limiter.admit(p)


def test_retry_after_counts_the_wait_for_one_token() -> None:
    clock = Clock()
    p = partner(id="slow-x", rate=RateLimit(per_second=0.25, burst=1), quota_per_day=1000)
    limiter = Limiter(clock)
    limiter.admit(p)
    with pytest.raises(TooManyRequests) as exc:
        limiter.admit(p)
    assert exc.value.headers["Retry-After"] == "4"     # 1 token at 0.25/s
    clock.now += 3
    with pytest.raises(TooManyRequests) as exc:
        limiter.admit(p)
    assert exc.value.headers["Retry-After"] == "1"


def test_quota_resets_at_the_utc_day_and_says_when() -> None:
    clock = Clock()
    clock.now = 86400 * 20000 + 86400 - 100            # 100 s before midnight UTC
    p = partner(id="quota-x", rate=RateLimit(per_second=1000, burst=1000), quota_per_day=2)
    limiter = Limiter(clock)
    before = _rate_limited("quota-x", "quota")
    limiter.admit(p)
    limiter.admit(p)
    with pytest.raises(QuotaExceeded) as exc:
        limiter.admit(p)
    assert exc.value.headers["Retry-After"] == "101"
    assert _rate_limited("quota-x", "quota") == before + 1
    clock.now += 100                                     # the next day
    limiter.admit(p)
    limiter.admit(p)
    with pytest.raises(QuotaExceeded):
        limiter.admit(p)


def test_budget_counts_distinct_numbers_per_clock_hour() -> None:
    clock = Clock()
    clock.now = 3600 * 500000 + 3600 - 10               # 10 s before the hour turns
    p = partner(id="budget-x", lookup_budget_per_hour=4)
    limiter = Limiter(clock)
    before = _rate_limited("budget-x", "budget")
    limiter.spend_budget(p, ["a", "b", "a"])
    assert _gauge("budget-x") == 0.5
    limiter.spend_budget(p, ["a", "b"])                  # repeats cost nothing
    limiter.spend_budget(p, [])
    assert _gauge("budget-x") == 0.5
    with pytest.raises(QuotaExceeded, match="Hourly budget of distinct numbers") as exc:
        limiter.spend_budget(p, ["c", "d", "e"])         # would make 5: the whole request is refused
    assert exc.value.headers["Retry-After"] == "11"
    assert _rate_limited("budget-x", "budget") == before + 1
    assert _gauge("budget-x") == 0.5                     # nothing of the refused request was booked
    limiter.spend_budget(p, ["c", "d"])                  # exactly the budget is fine
    assert _gauge("budget-x") == 1.0
    with pytest.raises(QuotaExceeded):
        limiter.spend_budget(p, ["e"])
    clock.now += 10                                      # a new hour: a fresh budget
    limiter.spend_budget(p, ["e", "f", "g", "h"])
    assert _gauge("budget-x") == 1.0


def test_counters_are_per_partner() -> None:
    clock = Clock()
    limiter = Limiter(clock)
    a = partner(id="pp-a", lookup_budget_per_hour=1)
    b = partner(id="pp-b", lookup_budget_per_hour=1)
    limiter.spend_budget(a, ["x"])
    limiter.spend_budget(b, ["y"])
    with pytest.raises(QuotaExceeded):
        limiter.spend_budget(a, ["y"])


def test_exact_messages() -> None:
    with pytest.raises(ValueError, match=r"^the limits divisor must be at least 1$"):
        Limiter(Clock(), divisor=0)
    limiter = Limiter(Clock())
    p = partner(id="msg-x", lookup_budget_per_hour=1)
    limiter.spend_budget(p, ["a"])
    with pytest.raises(QuotaExceeded, match=r"^Hourly budget of distinct numbers looked up is exhausted\.$"):
        limiter.spend_budget(p, ["b"])


def test_the_rate_is_divided_not_multiplied() -> None:
    clock = Clock()
    p = partner(id="div-x", rate=RateLimit(per_second=10, burst=2), quota_per_day=1000)
    limiter = Limiter(clock, divisor=2)          # 5/s and a burst of 1 per replica
    limiter.admit(p)
    clock.now += 0.1                             # half a token at 5/s
    with pytest.raises(TooManyRequests):
        limiter.admit(p)
    clock.now += 0.15                            # 0.5 + 0.75 tokens
    limiter.admit(p)


def test_the_day_and_the_hour_hold_between_requests() -> None:
    # the quota and the budget count over the whole UTC day / clock hour, not per instant
    clock = Clock()
    clock.now = 86400 * 20000 + 3600 * 5 + 10
    limiter = Limiter(clock)
    p = partner(id="hold-x", rate=RateLimit(per_second=1000, burst=1000), quota_per_day=2, lookup_budget_per_hour=1)
    limiter.spend_budget(p, ["a"])               # the budget's counters first: admit must still work
    limiter.admit(p)
    clock.now += 1.5
    limiter.admit(p)
    clock.now += 1.5
    with pytest.raises(QuotaExceeded):
        limiter.admit(p)
    with pytest.raises(QuotaExceeded):
        limiter.spend_budget(p, ["b"])
