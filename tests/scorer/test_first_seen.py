"""The scorer's first-seen signal: a number it holds no state for, once (fraudradar.first-seen)."""

from __future__ import annotations

from services.common.first_seen import FirstSeen, decode_first_seen, encode_first_seen
from services.scorer.partition import PartitionScorer
from tests.scorer.helpers import MIN, T0, call_out, device_view, pid, sms_in, sms_out
from tests.scorer.test_engine import engine, replica_of


def test_a_new_number_is_told_once_with_the_event_time_of_its_first_view() -> None:
    eng = engine()
    new, peer = pid("fs-new"), pid("fs-peer")
    first = eng.process(call_out(new, peer, T0))
    assert first.first_seen_ms == T0 and first.emits
    assert eng.process(sms_out(new, peer, T0 + MIN)).first_seen_ms == 0
    # the other side of a call is seen too (an off-net counterpart's inbound view)
    assert eng.process(sms_in(peer, new, T0 + 2 * MIN)).first_seen_ms == T0 + 2 * MIN
    assert eng.process(sms_in(peer, new, T0 + 3 * MIN)).first_seen_ms == 0


def test_devices_and_restored_numbers_are_not_first_seen() -> None:
    eng = engine()
    number = pid("fs-known")
    eng.process(sms_out(number, pid("x"), T0))
    assert eng.process(device_view(pid("fs-dev"), number, pid("fs-imsi"), T0, pid("y"))).first_seen_ms == 0
    # another replica taking the partition over restores the state: the number is not new to it
    restored: PartitionScorer = replica_of(eng)
    assert restored.process(sms_out(number, pid("x"), T0 + MIN)).first_seen_ms == 0


def test_a_number_forgotten_after_its_idle_horizon_is_first_seen_again() -> None:
    eng = engine()
    number, bystander = pid("fs-idle"), pid("fs-bystander")
    assert eng.process(sms_out(number, pid("x"), T0)).first_seen_ms == T0
    later = T0 + eng.policy.ttl_ms + 60 * MIN
    eng.process(sms_out(bystander, pid("x"), later))           # its sweep forgets the idle number
    assert eng.features_of("number", number) is None
    assert eng.process(sms_out(number, pid("x"), later + MIN)).first_seen_ms == later + MIN


def test_the_record_round_trips() -> None:
    record = FirstSeen(pid("fs-rt"), T0)
    assert decode_first_seen(encode_first_seen(record)) == record
