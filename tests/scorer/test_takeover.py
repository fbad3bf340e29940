"""SIM-swap account takeover from generic signals: the number's change tail (what it did since its
latest SIM/device change), the one-time-code senders from the registry's categories, and the
ACCOUNT_TAKEOVER rules. The swap alone stays a CAMARA signal, never an alert; an honest owner who
changes phone (new SIM, new phone, codes, but at home and texting their people) is not flagged."""

from __future__ import annotations

import msgspec
import pytest

from services.common.normalise import normalise_number
from services.common.pseudonym import Pseudonymizer, parse_key
from services.common.records import SmsMeta, View
from services.scorer import features as F
from services.scorer import layout as L
from services.scorer.partition import PartitionScorer
from services.scorer.state import entity_key
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.scorer.helpers import MIN, T0, call_out, pid, sim_change, sms_in, sms_out

PSEUDO = Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY))
VICTIM = pid("victim")
OLD_PHONE, NEW_PHONE = pid("old phone"), pid("new phone")
HOME, WORK, ELSEWHERE = pid("home cell"), pid("work cell"), pid("far cell")
FRIENDS = [pid(f"friend {i}") for i in range(5)]
HOUR = 60 * MIN


def sender(name: str) -> str:
    return PSEUDO("msisdn", normalise_number(name, "NL", allow_alphanumeric=True).value)


def code_sms(entity: str, sender_id: str, t_ms: int, *, device: str, cell: str) -> View:
    """An SMS from an A2P sender ID (delivered MT) to ``entity``."""
    return View(view_id=pid(f"{entity}{sender_id}{t_ms}"), entity_type="number", entity=entity, role="in",
                type="sms", operator="op", occurred_ms=t_ms, ingested_ms=t_ms, key_id="k", peer=sender(sender_id),
                peer_kind="short_code" if sender_id.isdigit() else "alphanumeric", number_kind="e164",
                sms=SmsMeta(), device=device, cell=cell)


def on(view: View, *, device: str, cell: str) -> View:
    return msgspec.structs.replace(view, device=device, cell=cell)


def history(eng: PartitionScorer) -> int:
    """A day of the owner's life before the change: texts and calls to friends from home and work."""
    t = T0
    for i in range(12):
        t = T0 + i * 2 * HOUR
        friend = FRIENDS[i % len(FRIENDS)]
        view = sms_out(VICTIM, friend, t, n=i) if i % 3 else call_out(VICTIM, friend, t)
        eng.process(on(view, device=OLD_PHONE, cell=HOME if i % 2 else WORK))
    return t + HOUR


def features(eng: PartitionScorer) -> dict[str, float]:
    return F.number_features(L.NUMBER.unpack(eng.state.store.numbers.records[entity_key(VICTIM)]))


def alerts_of(outputs: list[object]) -> list[str]:
    return [a.reasons[0].code for o in outputs for a in getattr(o, "alerts", [])]


def takeover(eng: PartitionScorer, t: int, *, codes: str = "3010", links: bool = False) -> list[object]:
    """The fraudster: the swap, codes on the new SIM in its own phone far away, then texts to strangers."""
    out = [eng.process(sim_change(VICTIM, t))]
    out.append(eng.process(code_sms(VICTIM, codes, t + 2 * MIN, device=NEW_PHONE, cell=ELSEWHERE)))
    for i in range(4):
        out.append(eng.process(on(sms_out(VICTIM, pid(f"stranger {i}"), t + (5 + i) * MIN, url=links, n=100 + i),
                                  device=NEW_PHONE, cell=ELSEWHERE)))
    return out


def test_a_takeover_alerts_at_its_spread_with_every_signal() -> None:
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = takeover(eng, t)
    # swap and codes: no alert (the swap is a CAMARA signal; codes come to every new phone)
    assert not alerts_of(out[:2])
    # one text to a never-contacted number is not yet the act (an owner who lost the phone on a
    # trip shows every signal until they text someone they know); the second, minutes later and
    # still no known contact, is a spread: no link needed
    assert not alerts_of(out[2:3])
    assert alerts_of(out[3:4]) == ["ACCOUNT_TAKEOVER"]
    f = features(eng)
    assert f["takeover_evidence"] == 5.0
    assert f["new_area_since_change"] == f["contacts_quiet_since_change"] == 1.0
    assert f["codes_since_change"] == 1.0 and f["new_contacts_since_change"] == 4.0


def test_the_swap_alone_is_a_camara_signal_not_an_alert() -> None:
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = eng.process(sim_change(VICTIM, t))
    assert not out.alerts and 0 < out.score < 50          # RECENT_SIM_SWAP: low
    assert features(eng)["takeover_evidence"] == 1.0


def test_an_owner_with_a_new_phone_who_texts_their_people_is_not_flagged() -> None:
    # new SIM, new phone, codes from the bank (apps re-activated): three of five signals; at home
    # and texting friends, even a link among them does not make it a takeover
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = [eng.process(sim_change(VICTIM, t)),
           eng.process(code_sms(VICTIM, "3010", t + 2 * MIN, device=NEW_PHONE, cell=HOME))]
    for i, friend in enumerate(FRIENDS):
        out.append(eng.process(on(sms_out(VICTIM, friend, t + (5 + i) * MIN, url=i == 1, n=200 + i),
                                  device=NEW_PHONE, cell=HOME)))
    out.append(eng.process(on(sms_out(VICTIM, pid("new colleague"), t + 20 * MIN, url=True, n=300),
                              device=NEW_PHONE, cell=HOME)))
    assert not alerts_of(out)
    f = features(eng)
    assert f["takeover_evidence"] == 3.0
    assert f["new_area_since_change"] == f["contacts_quiet_since_change"] == 0.0


def test_a_phone_lost_on_a_trip_whose_owner_texts_their_people_is_not_flagged() -> None:
    # new SIM, new phone and codes bought away from home: four signals, but the owner's contacts
    # hear from them (not quiet) and no link goes to a stranger
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = [eng.process(sim_change(VICTIM, t)),
           eng.process(code_sms(VICTIM, "3010", t + 2 * MIN, device=NEW_PHONE, cell=ELSEWHERE))]
    out += [eng.process(on(sms_out(VICTIM, friend, t + (5 + i) * MIN, n=400 + i), device=NEW_PHONE, cell=ELSEWHERE))
            for i, friend in enumerate(FRIENDS)]
    out.append(eng.process(on(sms_out(VICTIM, pid("hotel"), t + 30 * MIN, n=500), device=NEW_PHONE,
                              cell=ELSEWHERE)))
    assert not alerts_of(out)
    assert features(eng)["takeover_evidence"] == 4.0


def test_recontacting_a_number_first_texted_after_the_change_is_not_a_usual_contact() -> None:
    # the fraudster texts the same stranger twice: the second text finds it in the recent set, but
    # it was not there before the change, so the owner's contacts are still quiet
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    takeover(eng, t)
    eng.process(on(sms_out(VICTIM, pid("stranger 0"), t + 30 * MIN, n=600), device=NEW_PHONE, cell=ELSEWHERE))
    f = features(eng)
    assert f["contacts_quiet_since_change"] == 1.0 and f["new_contacts_since_change"] == 4.0


@pytest.mark.parametrize(("sender_id", "counted"), [("3010", 1.0), ("ING", 1.0), ("DigiD", 1.0),
                                                    ("PostNL", 0.0), ("KPN", 0.0), ("Pakketje", 0.0)])
def test_codes_come_from_the_registry_category_not_from_a_name(sender_id: str, counted: float) -> None:
    # the packaged registry: 3010 otp, ING bank, DigiD government count; a parcel carrier, an
    # operator and an unregistered ID do not
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    eng.process(sim_change(VICTIM, t))
    eng.process(code_sms(VICTIM, sender_id, t + 2 * MIN, device=OLD_PHONE, cell=HOME))
    assert features(eng)["codes_since_change"] == counted


def test_without_a_registry_code_category_a_takeover_without_codes_needs_a_link() -> None:
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = takeover(eng, t, codes="PostNL")               # four signals: no codes
    assert not alerts_of(out)
    eng2 = PartitionScorer.default(PSEUDO)
    t = history(eng2)
    out = takeover(eng2, t, codes="PostNL", links=True)
    assert alerts_of(out[2:3]) == ["ACCOUNT_TAKEOVER_LINKS"]


def test_the_change_features_fade_a_day_after_the_change() -> None:
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    takeover(eng, t)
    eng.process(on(sms_out(VICTIM, FRIENDS[0], t + 25 * HOUR, n=700), device=NEW_PHONE, cell=ELSEWHERE))
    f = features(eng)
    assert f["takeover_evidence"] == f["new_contacts_since_change"] == f["codes_since_change"] == 0.0


def test_a_record_without_the_change_tail_migrates_with_zeros() -> None:
    eng = PartitionScorer.default(PSEUDO)
    history(eng)
    record = eng.state.store.numbers.records[entity_key(VICTIM)]
    old = record[:L.NUMBER.pre_tail_size]
    assert L.NUMBER.migrate(old) == old + bytes(L.NUMBER.size - len(old))
    assert L.NUMBER.migrate(record[:L.NUMBER.legacy_size]) is not None
    assert L.NUMBER.migrate(record[:-1]) is None


def test_the_compiled_update_keeps_the_change_tail_as_the_python_does() -> None:
    assert F.COMPILED_APPLY is not None, "make install builds the C extension"
    codes = frozenset({sender("3010")})
    views = [on(sms_out(VICTIM, FRIENDS[i % 5], T0 + i * HOUR, n=i), device=OLD_PHONE, cell=[HOME, WORK][i % 2])
             for i in range(6)]
    t = T0 + 7 * HOUR
    views += [sim_change(VICTIM, t), code_sms(VICTIM, "3010", t + MIN, device=NEW_PHONE, cell=ELSEWHERE),
              code_sms(VICTIM, "PostNL", t + MIN, device=NEW_PHONE, cell=ELSEWHERE)]
    views += [on(sms_out(VICTIM, pid(f"s{i % 3}"), t + (2 + i) * MIN, url=i % 2 == 0, n=800 + i), device=NEW_PHONE,
                 cell=[ELSEWHERE, HOME][i % 2]) for i in range(6)]
    views += [on(sms_out(VICTIM, FRIENDS[1], t + 9 * MIN, n=900), device=NEW_PHONE, cell=WORK)]
    packed_c = packed_py = None
    for view in views:
        args = (True, packed_c, view, None, False, 10.0, frozenset(), 4.0, frozenset(), False, codes)
        got = F.COMPILED_APPLY(*args)
        want = F.apply_view(True, packed_py, view, None, False, 10.0, frozenset(), 4.0, frozenset(), False, codes)
        assert got is not None and got[0] == want[0]
        if want[0] == 1:            # a quiet view: the packed record
            assert got == want
            packed_c = packed_py = want[1]
            continue
        assert got[1] == want[1]
        assert got[5] == want[5]
        packed_c = packed_py = L.NUMBER.pack(want[1])
    # new SIM, new phone, codes (one of the two SMS); a cell of before seen, a friend of before texted
    assert want[5]["takeover_evidence"] == 3.0
    assert want[5]["codes_since_change"] == 1.0 and want[5]["link_contacts_since_change"] == 2.0
    # three never-contacted numbers (s0, s1, s2) by 8 min after the latest change (the new phone,
    # first seen a minute after the swap): 3 / (8/60 h + 1 pseudo-hour)
    assert want[5]["new_contact_rate_since_change"] == pytest.approx(3.0 / (8 / 60 + 1.0))


def _owner_change(eng: PartitionScorer, t: int, cell: str) -> list[object]:
    """A new SIM in a new phone, the bank's codes, a text to a friend: three of five signals."""
    return [eng.process(sim_change(VICTIM, t)),
            eng.process(code_sms(VICTIM, "3010", t + 2 * MIN, device=NEW_PHONE, cell=cell)),
            eng.process(on(sms_out(VICTIM, FRIENDS[0], t + 5 * MIN, n=1000), device=NEW_PHONE, cell=cell))]


def reason_codes(outputs: list[object]) -> set[str]:
    return {r.code for o in outputs for a in getattr(o, "alerts", []) for r in a.reasons}


def test_an_owner_whose_new_contacts_come_over_the_day_is_not_a_spreading_takeover() -> None:
    # new SIM, new phone, codes: three signals; then eleven never-contacted numbers (a plumber, a
    # shop, new colleagues) one every two hours - an owner's pace, not a takeover's spread
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = _owner_change(eng, t, HOME)
    out += [eng.process(on(call_out(VICTIM, pid(f"shop {i}"), t + HOUR + i * 2 * HOUR), device=NEW_PHONE, cell=HOME))
            for i in range(11)]
    f = features(eng)
    assert f["takeover_evidence"] == 3.0 and f["new_contacts_since_change"] == 11.0
    assert f["new_contact_rate_since_change"] == pytest.approx(11.0 / (21.0 + 1.0), rel=0.01)
    assert not reason_codes(out) & {"ACCOUNT_TAKEOVER_SPREAD", "ACCOUNT_TAKEOVER_STRANGERS"}


def test_a_takeover_spreading_at_once_still_alerts_with_three_signals() -> None:
    # the same three signals and the same ten never-contacted numbers, within minutes of the swap
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = _owner_change(eng, t, HOME)
    out += [eng.process(on(sms_out(VICTIM, pid(f"mark {i}"), t + (10 + i) * MIN, n=1100 + i), device=NEW_PHONE,
                           cell=HOME)) for i in range(10)]
    f = features(eng)
    assert f["takeover_evidence"] == 3.0 and f["new_contact_rate_since_change"] > 5.0
    assert "ACCOUNT_TAKEOVER_SPREAD" in reason_codes(out)


def test_a_phone_lost_on_a_trip_whose_first_contact_is_a_stranger_is_not_flagged() -> None:
    # every signal holds until the owner texts someone they know: new SIM, new phone, codes, a
    # cell far from home, and the first contact after the change a number outside the recent set
    # (the hotel). One contact is not the act; the next ones go to the owner's people, hours later
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = [eng.process(sim_change(VICTIM, t)),
           eng.process(code_sms(VICTIM, "3010", t + 5 * MIN, device=NEW_PHONE, cell=ELSEWHERE)),
           eng.process(on(sms_out(VICTIM, pid("hotel"), t + 40 * MIN, n=600), device=NEW_PHONE, cell=ELSEWHERE))]
    assert features(eng)["takeover_evidence"] == 5.0
    out += [eng.process(on(sms_out(VICTIM, friend, t + 3 * HOUR + i * HOUR, n=610 + i), device=NEW_PHONE,
                           cell=ELSEWHERE)) for i, friend in enumerate(FRIENDS[:2])]
    assert not alerts_of(out)
    assert features(eng)["contacts_quiet_since_change"] == 0.0


def test_a_lost_phone_owner_whose_new_contacts_come_at_an_owners_pace_is_not_flagged() -> None:
    # all five signals and two never-contacted numbers (a taxi, the hotel) before any known one,
    # but hours apart: not the pace of a takeover's spread
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = [eng.process(sim_change(VICTIM, t)),
           eng.process(code_sms(VICTIM, "3010", t + 5 * MIN, device=NEW_PHONE, cell=ELSEWHERE)),
           eng.process(on(call_out(VICTIM, pid("taxi"), t + 30 * MIN), device=NEW_PHONE, cell=ELSEWHERE)),
           eng.process(on(sms_out(VICTIM, pid("hotel"), t + 3 * HOUR, n=700), device=NEW_PHONE, cell=ELSEWHERE))]
    f = features(eng)
    assert f["takeover_evidence"] == 5.0 and f["new_contacts_since_change"] == 2.0
    assert f["new_contact_rate_since_change"] < 1.0
    assert not alerts_of(out)


def _group_post(eng: PartitionScorer, t: int, members: int) -> list[object]:
    """One message to a group chat: an SMS to each member within a second and a half."""
    return [eng.process(on(sms_out(VICTIM, pid(f"member {i}"), t + i * 75, n=800 + i), device=OLD_PHONE, cell=HOME))
            for i in range(members)]


def test_a_group_post_after_a_lone_swap_is_not_a_takeover() -> None:
    # a new SIM in the owner's own phone, at home, a text to a friend; then a post to a group of
    # twenty, more than the recent-recipient set holds: twenty never-contacted numbers at once, but
    # the only takeover signal is the change itself
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = [eng.process(sim_change(VICTIM, t)),
           eng.process(on(sms_out(VICTIM, FRIENDS[0], t + 10 * MIN, n=790), device=OLD_PHONE, cell=HOME))]
    out += _group_post(eng, t + 30 * MIN, 20)
    f = features(eng)
    assert f["takeover_evidence"] == 1.0 and f["new_contacts_since_change"] == 20.0
    assert "ACCOUNT_TAKEOVER_STRANGERS" not in reason_codes(out)
    assert not alerts_of(out)


def test_a_takeover_texting_strangers_at_once_with_two_signals_alerts() -> None:
    # the fraudster in an old phone of the victim's model (no new device), no codes: new SIM and a
    # cell the number never used; fifteen never-contacted numbers within minutes, no link
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    out = [eng.process(sim_change(VICTIM, t)),
           eng.process(on(sms_out(VICTIM, FRIENDS[1], t + 3 * MIN, n=890), device=OLD_PHONE, cell=ELSEWHERE))]
    out += [eng.process(on(sms_out(VICTIM, pid(f"target {i}"), t + (5 + i) * MIN, n=900 + i), device=OLD_PHONE,
                           cell=ELSEWHERE)) for i in range(15)]
    f = features(eng)
    assert f["takeover_evidence"] == 2.0
    assert alerts_of(out) == ["ACCOUNT_TAKEOVER_STRANGERS"]


def test_codes_after_a_swap_count_the_swap_once() -> None:
    # SIM_SWAP_THEN_OTP's condition is the swap: beside RECENT_SIM_SWAP (evidence `swap`) the swap
    # counts once, so swap, new phone and codes stay medium, however a model reads the number
    eng = PartitionScorer.default(PSEUDO)
    t = history(eng)
    eng.process(sim_change(VICTIM, t))
    out = eng.process(code_sms(VICTIM, "3010", t + 2 * MIN, device=NEW_PHONE, cell=HOME))
    assert out.risk is not None
    assert {"SIM_SWAP_THEN_OTP", "RECENT_SIM_SWAP", "RECENT_DEVICE_CHANGE"} <= {r.code for r in out.risk.reasons}
    assert out.score <= 55       # 45 (codes after the swap) and 10 (new phone): the swap counted once


def young_history(eng: PartitionScorer, hours: float) -> int:
    """A number first seen ``hours`` ago (a new deployment's first day, a number first seen this
    morning): two texts and a call to friends from home on its phone; the last event time + 10 min."""
    t = T0
    for i in range(3):
        t = T0 + int(i * hours * HOUR / 2)
        friend = FRIENDS[i % len(FRIENDS)]
        view = call_out(VICTIM, friend, t) if i == 1 else sms_out(VICTIM, friend, t, n=1300 + i)
        eng.process(on(view, device=OLD_PHONE, cell=HOME))
    return t + 10 * MIN


def _new_phone_posts(eng: PartitionScorer, t: int, members: int) -> list[object]:
    """The owner's new phone, at home: a friend's text comes in, then a post to a group chat."""
    out = [eng.process(on(sms_in(VICTIM, FRIENDS[2], t), device=NEW_PHONE, cell=HOME))]
    out += [eng.process(on(sms_out(VICTIM, pid(f"member {i}"), t + 5 * MIN + i * 75, n=1400 + i), device=NEW_PHONE,
                           cell=HOME)) for i in range(members)]
    return out


def test_a_new_phone_on_a_record_hours_old_does_not_make_a_group_post_a_takeover() -> None:
    # the record has seen three contacts in an hour and a half: the group's members are "never
    # contacted" and the three friends are "its usual contacts, all quiet", because the record has
    # not seen enough of the owner's life to know. New phone + contacts quiet is two signals and
    # fifteen never-contacted numbers at once with a reply in: ACCOUNT_TAKEOVER_STRANGERS fires
    # without the history gate
    eng = PartitionScorer.default(PSEUDO)
    t = young_history(eng, 1.5)
    out = _new_phone_posts(eng, t, 16)
    f = features(eng)
    assert f["takeover_evidence"] == 2.0 and f["new_contacts_since_change"] == 16.0
    assert f["contacts_quiet_since_change"] == 1.0
    assert f["history_at_change_h"] == pytest.approx(1.5 + 10 / 60, abs=0.01)
    assert not reason_codes(out) & {"ACCOUNT_TAKEOVER", "ACCOUNT_TAKEOVER_LINKS", "ACCOUNT_TAKEOVER_SPREAD",
                                    "ACCOUNT_TAKEOVER_STRANGERS"}
    assert not alerts_of(out)


def test_the_same_change_and_spread_after_half_a_day_of_history_still_alerts() -> None:
    # the gate is the record's history at the change, not the owner: twelve and a half hours of the
    # same life and the same new phone with fifteen strangers at once is ACCOUNT_TAKEOVER_STRANGERS
    eng = PartitionScorer.default(PSEUDO)
    t = young_history(eng, 12.5)
    out = _new_phone_posts(eng, t, 16)
    assert features(eng)["history_at_change_h"] >= 12.0
    assert "ACCOUNT_TAKEOVER_STRANGERS" in reason_codes(out)


def test_a_takeover_of_a_number_hours_old_is_left_to_the_rules_without_history() -> None:
    # a number first seen an hour and a half ago, swapped; codes on the fraudster's phone far away
    # and links to strangers: the ACCOUNT_TAKEOVER rules do not speak on so short a history, the
    # link spread after the swap (SIM_SWAP_THEN_SPREAD) still alerts
    eng = PartitionScorer.default(PSEUDO)
    t = young_history(eng, 1.5)
    out = takeover(eng, t, links=True)
    f = features(eng)
    assert f["takeover_evidence"] == 5.0 and f["history_at_change_h"] < 12.0
    codes = reason_codes(out)
    assert "SIM_SWAP_THEN_SPREAD" in codes and not any(c.startswith("ACCOUNT_TAKEOVER") for c in codes)


def test_history_at_change_is_zero_without_a_change_and_rule_only() -> None:
    from services.scorer import catalogue

    eng = PartitionScorer.default(PSEUDO)
    history(eng)
    f = features(eng)
    assert f["history_at_change_h"] == 0.0
    assert "history_at_change_h" not in catalogue.for_models(f)
