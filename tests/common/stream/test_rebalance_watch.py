"""The stuck-rejoin watchdog of the stream loop (kafka-python 3.0.x can stall in a rejoin)."""

from __future__ import annotations

from services.common.stream import RebalanceWatch, StreamConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revoke_without_a_following_assignment_is_a_stall_after_the_limit() -> None:
    clock = Clock()
    watch = RebalanceWatch(150.0, clock)
    assert watch.stalled_for() is None              # never revoked: idle is not stalled
    watch.revoked()
    clock.now += 149
    assert watch.stalled_for() is None
    watch.revoked()                                  # a second revoke does not restart the wait
    clock.now += 2
    assert watch.stalled_for() == 151.0


def test_any_assignment_ends_the_wait_even_an_empty_one() -> None:
    clock = Clock()
    watch = RebalanceWatch(150.0, clock)
    watch.revoked()
    clock.now += 100
    watch.assigned()                                 # kafka-python calls it with set() too
    clock.now += 1000
    assert watch.stalled_for() is None


def test_the_default_limit_outlasts_a_dead_members_session_and_a_restore() -> None:
    assert StreamConfig("s", "g", ["t"], "dlq").rejoin_stall_s >= 45 + 60
