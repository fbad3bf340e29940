"""The live call state in memory: steps, bounds, TTL, spoof verdict, known contacts (no broker)."""

from __future__ import annotations

from typing import Any

from services.api.call_state import (
    MAX_CALLS_PER_SUBSCRIBER,
    Announcements,
    CallStateStore,
    counterpart_class,
    verdict,
)
from services.common.call_records import CallState

MIN = 60_000


def rec(state: str, at: int, *, call: str = "c1", sub: str = "s1", other: str = "x1", **kw: Any) -> CallState:
    return CallState(call=call, subscriber=sub, counterpart=other, state=state, direction="mt",  # type: ignore[arg-type]
                     operator="kpn", occurred_ms=at, ingested_ms=at, key_id="k", **kw)


def store(**kw: Any) -> CallStateStore:
    values: dict[str, Any] = {"retain_ms": 60 * MIN, "max_call_ms": 240 * MIN, "contacts_ms": 24 * 60 * MIN,
                              "max_subscribers": 1000}
    values.update(kw)
    return CallStateStore(**values)


def none(_: str) -> str:
    return "none"


def test_a_call_is_in_progress_until_ended_then_recent_within_the_window_only() -> None:
    s = store()
    s.apply(rec("started", 0))
    s.apply(rec("answered", 5_000))
    [live] = s.recent("s1", 10 * MIN, 15 * MIN)
    assert live.ended_ms is None and live.answered_ms == 5_000
    s.apply(rec("ended", 20 * MIN, duration_s=1195.0))
    assert [c.duration_s for c in s.recent("s1", 30 * MIN, 15 * MIN)] == [1195.0]
    assert s.recent("s1", 36 * MIN, 15 * MIN) == []        # ended 16 min ago: outside a 15-min window
    assert s.recent("nobody", 0, 15 * MIN) == []


def test_ttl_and_bounds() -> None:
    s = store(max_subscribers=3)
    for n in range(5):
        s.apply(rec("started", 0, sub=f"s{n}"))
    assert len(s) == 3 and s.dropped == 2                     # least recently changed dropped first
    s.apply(rec("ended", 1, sub="s4", duration_s=0.0))
    assert s.evict(1 + 61 * MIN) == 1                         # the ended call, past retain_ms
    assert s.evict(241 * MIN) == 2                            # calls whose end never came, past max_call_ms
    assert len(s) == 0
    one = store()
    for n in range(MAX_CALLS_PER_SUBSCRIBER + 3):
        one.apply(rec("started", n, call=f"c{n}"))
    assert one.calls() == MAX_CALLS_PER_SUBSCRIBER


def test_bank_cli_from_an_international_route_without_announcement_is_a_spoof() -> None:
    s = store()
    call = s.apply(rec("started", 1000, cli="bankcli", cli_owner="bank-a", cli_domestic=True, international=True))
    assert call is not None and call.spoof
    level, codes = verdict(call, none)
    assert (level, codes) == ("critical", ["BANK_CLI_SPOOF"])   # not also INTERNATIONAL_DOMESTIC_CLI
    assert counterpart_class(call, codes) == "protected_bank_cli"


def test_an_announced_call_or_one_from_the_banks_own_route_is_not() -> None:
    announcements = Announcements()
    announcements.add("bank-a", "s1", "bankcli", expires_ms=5000)
    s = store(announcements=announcements)
    announced = s.apply(rec("started", 1000, cli="bankcli", cli_owner="bank-a", international=True,
                            cli_domestic=True))
    domestic = s.apply(rec("started", 1000, call="c2", sub="s2", cli="bankcli", cli_owner="bank-a"))
    late = s.apply(rec("started", 6000, call="c3", cli="bankcli", cli_owner="bank-a", international=True))
    assert announced is not None and not announced.spoof
    assert verdict(announced, none) == ("none", [])             # nor INTERNATIONAL_DOMESTIC_CLI: the bank vouches
    assert domestic is not None and not domestic.spoof
    assert late is not None and late.spoof                     # the announcement expired at 5000
    other_bank = s.apply(rec("started", 1000, call="c4", cli="bankcli", cli_owner="bank-b", international=True))
    assert other_bank is not None and other_bank.spoof       # bank-a's announcement does not cover bank-b's number
    dno = s.apply(rec("started", 1000, call="c5", sub="s3", cli_owner="dno"))
    assert dno is not None and dno.spoof


def test_forwarding_explains_an_international_route_with_a_domestic_cli() -> None:
    s = store()
    plain = s.apply(rec("started", 0, cli_domestic=True, international=True))
    fwd = s.apply(rec("started", 0, call="c2", sub="s2", cli_domestic=True, international=True, forwarded=True))
    assert plain is not None and verdict(plain, none) == ("high", ["INTERNATIONAL_DOMESTIC_CLI"])
    assert fwd is not None and verdict(fwd, none) == ("none", [])


def test_flagged_counterpart_takes_its_risk_level() -> None:
    s = store()
    call = s.apply(rec("started", 0, other="flagged"))
    assert call is not None
    assert verdict(call, lambda p: "critical" if p == "flagged" else "none") == ("critical", ["FLAGGED_COUNTERPART"])
    assert verdict(call, lambda p: "low" if p == "flagged" else "none") == ("none", [])
    assert counterpart_class(call, ["FLAGGED_COUNTERPART"]) == "flagged"


def test_a_counterpart_spoken_with_before_is_a_known_contact() -> None:
    s = store()
    s.apply(rec("started", 0, call="c0", other="friend"))
    s.apply(rec("ended", 60_000, call="c0", other="friend", duration_s=55.0))
    again = s.apply(rec("started", 10 * MIN, call="c1", other="friend"))
    stranger = s.apply(rec("started", 10 * MIN, call="c2", other="stranger"))
    assert again is not None and again.known_contact and counterpart_class(again, []) == "known_contact"
    assert stranger is not None and not stranger.known_contact and counterpart_class(stranger, []) == "unknown"


def test_eviction_work_per_pass_is_bounded_and_oldest_first() -> None:
    s = store()
    for n in range(10):
        s.apply(rec("started", n, call=f"c{n}", sub=f"s{n}"))
        s.apply(rec("ended", n + 1, call=f"c{n}", sub=f"s{n}", duration_s=0.0))
    assert s.evict(120 * MIN, max_steps=3) == 3
    assert s.recent("s0", 0, 60 * MIN) == [] and len(s) == 7     # s0..s2 gone, the rest next time
    assert s.evict(120 * MIN) == 7 and len(s) == 0
    announcements = Announcements()
    announcements.add("b", "s", "c1", expires_ms=10)
    announcements.add("b", "s", "c2", expires_ms=100)
    announcements.evict(50)
    assert len(announcements) == 1 and announcements.matches("b", "s", "c2", 60)
