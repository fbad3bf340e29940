"""Device → number links: a number acting on a flagged device gets the device's verdict.

The link flag sits beside the number's own verdict: the number's own alerts must not depend on
when a link arrives (two replicas, a crash replay), and the link alert's id depends only on
(number, device, device episode), so a redelivered link is a no-op.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec

from services.common.records import Link, SmsMeta, View
from services.scorer import layout as L
from services.scorer.output import EngineOutput
from services.scorer.partition import PartitionScorer
from services.scorer.policy import Policy
from tests.scorer.helpers import MIN, T0, device_view, pid, sim_change, sms_in, sms_out
from tests.scorer.test_engine import PSEUDO, blast, engine, replica_of, run


def farm_phone(eng: PartitionScorer, device: str, n_sims: int = 6, start: int = T0) -> list[EngineOutput]:
    """A phone cycling through SIMs, each sending a few SMS: SIM_HOPPING / MANY_NUMBERS_ON_DEVICE."""
    views = []
    for s in range(n_sims):
        for k in range(3):
            t = start + (s * 3 + k) * MIN
            views.append(msgspec.structs.replace(
                device_view(device, pid(f"sim{device}{s}"), pid(f"imsi{device}{s}"), t, pid(f"v{s}{k}")),
                number_enc=f"enc-{s}"))
    return run(eng, views)


def links_of(outs: list[EngineOutput]) -> list[Link]:
    """The per-number links (not the broadcasts a new device episode adds)."""
    return [link for o in outs for link in o.links if not link.broadcast]


def test_flagged_device_links_the_numbers_acting_on_it() -> None:
    eng = engine()
    device = pid("farm-phone")
    outs = farm_phone(eng, device)
    device_alerts = [a for o in outs for a in o.alerts]
    assert len(device_alerts) == 1 and device_alerts[0].entity_type == "device"
    links = links_of(outs)
    # one link per SIM seen acting once the device is flagged (not one per view)
    assert links and len({link.number for link in links}) == len(links)
    crossed = next(i for i, o in enumerate(outs) if o.alerts)
    assert outs[crossed].links, "the view that flags the device links its number"
    assert all(not o.links for o in outs[:crossed])
    assert all(link.device == device and link.device_score >= 70 for link in links)
    assert all(link.reason in ("SIM_HOPPING", "MANY_NUMBERS_ON_DEVICE") for link in links)
    assert {link.number_enc for link in links} <= {f"enc-{s}" for s in range(6)}


def test_link_alerts_once_with_a_deterministic_id_and_flags_the_number() -> None:
    eng = engine()
    links = links_of(farm_phone(eng, pid("farm-phone2")))
    link = links[-1]
    first = eng.apply_link(link)
    assert len(first.alerts) == 1
    alert = first.alerts[0]
    assert alert.entity_type == "number" and alert.entity == link.number
    assert alert.reasons[0].code == "ON_FLAGGED_DEVICE" and alert.level == "high" and alert.score == 80
    assert alert.number_enc == link.number_enc and alert.raised_at.startswith("2026-09-21")
    assert first.risk is not None and first.risk.level == "high"
    assert first.risk.reasons[0].code == "ON_FLAGGED_DEVICE" and first.risk.first_flagged_at is not None
    # redelivered (at-least-once): nothing new
    again = eng.apply_link(link)
    assert not again.alerts and again.risk is None
    # another engine (another replica, a restore) gives the same id
    other = engine()
    assert other.apply_link(link).alerts[0].alert_id == alert.alert_id
    # the id names the number, the device and the device's episode
    expected = hashlib.sha256(f"number|{link.number}|link|{link.device}|{link.device_episode_s}|"
                              f"{eng.model_version}".encode()).hexdigest()[:32]
    assert alert.alert_id == expected
    assert alert.evidence == {"device_risk": float(link.device_score)}
    assert alert.window.start == datetime.fromtimestamp(link.device_episode_s, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    assert alert.window.end == alert.raised_at and alert.key_id == link.key_id
    assert alert.reasons[0].text.startswith(f"ON_FLAGGED_DEVICE: acted on a device flagged for {link.reason}")


def test_own_alerts_do_not_depend_on_when_a_link_arrives() -> None:
    link = links_of(farm_phone(engine(), pid("farm-phone3")))[0]
    number = link.number
    # the number's own alert: link SMS to strangers, paced (SLOW_LINK_SPREAD; a run alone stays medium)
    own = [sms_out(number, pid(f"victim{i}"), T0 + 5 * MIN + i * 10 * MIN, url=True, n=i) for i in range(8)]
    link_first, link_last = engine(), engine()
    out_a = [link_first.apply_link(link), *run(link_first, own)]
    out_b = [*run(link_last, own), link_last.apply_link(link)]
    ids_a = {a.alert_id for o in out_a for a in o.alerts}
    ids_b = {a.alert_id for o in out_b for a in o.alerts}
    assert ids_a == ids_b and len(ids_a) == 2      # the link's alert and the number's own one
    assert [o.score for o in out_a[1:]] == [o.score for o in out_b[:-1]]


def test_link_flag_expires_and_is_tombstoned() -> None:
    eng = engine()
    link = links_of(farm_phone(eng, pid("farm-phone4")))[0]
    eng.apply_link(link)
    bystander = pid("bystander-links")
    # the link flag (high) lasts 72 h; 4 days on, the sweep tombstones the link-only number
    out = eng.process(sms_out(bystander, pid("y"), T0 + 4 * 24 * 60 * MIN))
    assert ("number", link.number) in out.tombstones


def test_link_flag_outlives_the_forgotten_own_state_but_not_its_expiry() -> None:
    eng = engine()
    link = links_of(farm_phone(eng, pid("farm-phone5")))[0]
    number = link.number
    swapped = eng.process(sim_change(number, T0))
    assert swapped.risk is not None
    eng.apply_link(link)
    packed = eng.store.numbers.records[bytes.fromhex(number)]
    assert eng.store.numbers.layout.link_tail(packed)[L.LINK_SCORE] == 80
    # flag expiry with the SIM change still known: a risk update (the change dates), not a tombstone
    out = eng.process(sms_out(pid("bystander5"), pid("z"), T0 + 4 * 24 * 60 * MIN))
    updates = [r for r in out.risk_updates if r.entity == number]
    assert updates and updates[0].level == "none" and updates[0].sim_changed_at is not None


def test_records_without_the_link_tail_are_migrated_on_restore() -> None:
    eng = engine()
    run(eng, blast(pid("legacy"), T0, n=20))
    layout = L.NUMBER
    legacy = {key[:1] + key[1:]: (value[:layout.legacy_size] if value is not None else None)
              for key, value in eng.store.drain_changelog()}
    restored = engine()
    for key, value in legacy.items():
        restored.store.apply_changelog(key, value)
    # what the legacy records lacked comes back as zeros (the blast's link runs among it)
    assert restored.store.numbers.records == {key: value[:layout.legacy_size] + bytes(layout.size - layout.legacy_size)
                                              for key, value in eng.store.numbers.records.items()}


def test_links_can_be_switched_off_in_the_policy() -> None:
    base = Policy.load(PSEUDO).spec
    spec = base.model_copy(update={"links": base.links.model_copy(update={"enabled": False})})
    eng = PartitionScorer(Policy(spec, PSEUDO), PSEUDO)
    assert not links_of(farm_phone(eng, pid("farm-phone6")))
    assert not eng.apply_link(Link(number=pid("n"), device=pid("d"), device_score=90, device_episode_s=1,
                                   reason="SIM_HOPPING", occurred_ms=T0, key_id="k")).alerts


def test_a_view_is_unchanged_by_the_link_fields() -> None:
    """Numbers that never meet a flagged device score exactly as before (the tail stays zero)."""
    eng = engine()
    outs = run(eng, [sms_out(pid("plain"), pid(f"p{i}"), T0 + i * MIN) for i in range(5)])
    assert not any(o.links for o in outs)
    values = eng.store.numbers.layout.unpack(eng.store.numbers.records[bytes.fromhex(pid("plain"))])
    assert values[L.NUMBER.link_at:L.NUMBER.tail_at] == [0, 0, 0, 0]


def test_a_new_device_episode_links_the_numbers_seen_on_it_before() -> None:
    """The SIMs that left a farm before it was recognisable: linked by the broadcast (numbers
    already seen on the device) or when they show up later — the same alert ids either way."""
    device = pid("farm-phone7")
    probe = engine()
    outs = farm_phone(probe, device)
    broadcasts = [link for o in outs for link in o.links if link.broadcast]
    assert len(broadcasts) == 1 and broadcasts[0].number == "" and broadcasts[0].number_enc is None
    early = [sms_out(pid(f"sim{device}{s}"), pid(f"w{s}"), T0 - 60 * MIN + s * MIN, device=device) for s in range(3)]
    views_first, broadcast_first = engine(), engine()
    run(views_first, early)
    out = views_first.apply_link(broadcasts[0])
    ids_a = {a.alert_id for a in out.alerts}
    assert {a.entity for a in out.alerts} == {v.entity for v in early}
    assert all(a.reasons[0].code == "ON_FLAGGED_DEVICE" for a in out.alerts)
    assert len(out.risk_updates) == 3
    assert not broadcast_first.apply_link(broadcasts[0]).alerts      # nobody known on it yet
    ids_b = {a.alert_id for o in run(broadcast_first, early) for a in o.alerts}
    assert ids_a == ids_b
    # the per-number link of the same episode is a no-op for a number the broadcast linked
    same = msgspec.structs.replace(broadcasts[0], number=early[0].entity, broadcast=False)
    assert not views_first.apply_link(same).alerts
    # a redelivered broadcast changes nothing
    assert not views_first.apply_link(broadcasts[0]).alerts


def test_the_remembered_device_survives_a_restore_and_expires() -> None:
    device = pid("farm-phone8")
    broadcast = next(link for o in farm_phone(engine(), device) for link in o.links if link.broadcast)
    first = engine()
    first.apply_link(broadcast)
    restored = replica_of(first)
    late = sms_out(pid("late-sim"), pid("w"), T0 + 30 * MIN, device=device)
    assert [a.reasons[0].code for a in restored.process(late).alerts] == ["ON_FLAGGED_DEVICE"]
    # past the link flag's lifetime (72 h) the device is no longer remembered
    much_later = sms_out(pid("later-sim"), pid("w"), T0 + 4 * 24 * 60 * MIN, device=device)
    restored.process(sms_out(pid("clock"), pid("w"), T0 + 4 * 24 * 60 * MIN))
    assert not restored.process(much_later).alerts
    assert not restored.store.flagged.records


def _two_sim_phone(device: str, numbers: list[str], peers: list[str], url_every: int) -> list[View]:
    """One phone, its SIMs taking turns: an SMS every 10 minutes to ``peers`` in turn."""
    return [msgspec.structs.replace(
        device_view(device, numbers[i % len(numbers)], pid(f"imsi{numbers[i % len(numbers)]}"), T0 + i * 10 * MIN,
                    peers[i % len(peers)]),
        sms=SmsMeta(has_url=i % url_every == 0)) for i in range(24)]


def test_a_phone_spreading_links_from_two_numbers_is_flagged_and_links_both() -> None:
    """A slow farm on a two-SIM phone: no SIM hopping, each number's own traffic still small."""
    eng = engine()
    device, sims = pid("slow-farm-phone"), [pid("slow-a"), pid("slow-b")]
    outs = run(eng, _two_sim_phone(device, sims, [pid(f"stranger{i}") for i in range(24)], url_every=1))
    alerts = [a for o in outs for a in o.alerts]
    assert len(alerts) == 1 and alerts[0].reasons[0].code == "MULTI_SIM_LINK_SPREAD"
    crossed = next(i for i, o in enumerate(outs) if o.alerts)
    assert 7 <= crossed <= 10, "about eight never-contacted recipients in, not at the first message"
    assert {link.number for link in links_of(outs)} == set(sims)


def test_a_dual_sim_phone_texting_its_contacts_is_not_flagged() -> None:
    eng = engine()
    device, sims = pid("dual-sim"), [pid("private"), pid("work")]
    # a link now and then, to a circle of six contacts
    outs = run(eng, _two_sim_phone(device, sims, [pid(f"friend{i}") for i in range(6)], url_every=4))
    assert not [a for o in outs for a in o.alerts]
    # the same links to strangers from one SIM: the number's own rules judge it (replies matter)
    outs = run(engine(), _two_sim_phone(device, sims[:1], [pid(f"stranger{i}") for i in range(24)], url_every=1))
    assert "MULTI_SIM_LINK_SPREAD" not in {r.code for o in outs if o.risk for r in o.risk.reasons}


def test_a_number_its_contacts_answer_does_not_take_its_devices_verdict() -> None:
    # legitimacy evidence: the people a number texts reply (a business modem's customers, a
    # family's SIM in a shared phone); a farm SIM's targets never do
    link = links_of(farm_phone(engine(), pid("farm-phone9")))[0]
    answered, silent = engine(), engine()
    number = link.number
    for eng in (answered, silent):
        run(eng, [sms_out(number, pid(f"friend{i}"), T0 + i * MIN, n=i) for i in range(6)])
    run(answered, [sms_in(number, pid(f"friend{i}"), T0 + (i + 1) * MIN) for i in range(2)])
    assert silent.apply_link(link).alerts
    out = answered.apply_link(link)
    assert not out.alerts and out.risk is None and answered.counters["links_legitimate"] == 1
    # the gate is the policy's: off, the answered number is linked as any other
    base = Policy.load(PSEUDO).spec
    spec = base.model_copy(update={"links": base.links.model_copy(update={"two_way_below": 0.0})})
    off = PartitionScorer(Policy(spec, PSEUDO), PSEUDO)
    run(off, [sms_out(number, pid(f"friend{i}"), T0 + i * MIN, n=i) for i in range(6)])
    run(off, [sms_in(number, pid(f"friend{i}"), T0 + (i + 1) * MIN) for i in range(2)])
    assert off.apply_link(link).alerts


def household_phone(eng: PartitionScorer, device: str, n_sims: int = 4, start: int = T0) -> list[EngineOutput]:
    """A shared family phone: the owner's SIM and three more of the household, the owner's SIM
    used again between the others (SIMs that return), as many SIMs and views as ``farm_phone``."""
    owner = 0
    views = []
    t = start
    for s in range(1, n_sims):
        for sim in (owner, s, s):
            views.append(device_view(device, pid(f"sim{device}{sim}"), pid(f"imsi{device}{sim}"), t,
                                     pid(f"v{device}{t}")))
            t += 3 * MIN
    return run(eng, views)


def test_a_phone_whose_sims_return_is_not_flagged_for_hopping() -> None:
    # legitimacy evidence on the device: a household's SIMs (and a dual-SIM phone's) alternate and
    # come back; a farm rotates fresh SIMs through its slots and none comes back
    outs = household_phone(engine(), pid("family-phone"))
    assert not [a for o in outs for a in o.alerts]
    # the same four SIMs in a row, none coming back: the rotation SIM_HOPPING is for
    farm = farm_phone(engine(), pid("four-sim-farm"), n_sims=4)
    assert {r.code for o in farm for a in o.alerts for r in a.reasons} >= {"SIM_HOPPING"}


def test_a_number_that_texts_its_own_contacts_again_does_not_take_its_devices_verdict() -> None:
    # legitimacy evidence: recipients it had contacted before (returning recipients); a farm
    # SIM's targets are strangers each time
    link = links_of(farm_phone(engine(), pid("farm-phone10")))[0]
    returning, strangers = engine(), engine()
    number = link.number
    run(returning, [sms_out(number, pid(f"friend{i % 2}"), T0 + i * MIN, n=i) for i in range(4)])
    run(strangers, [sms_out(number, pid(f"stranger{i}"), T0 + i * MIN, n=i) for i in range(4)])
    assert strangers.apply_link(link).alerts
    out = returning.apply_link(link)
    assert not out.alerts and out.risk is None and returning.counters["links_legitimate"] == 1
    # the gate is the policy's: off, the number is linked as any other
    base = Policy.load(PSEUDO).spec
    spec = base.model_copy(update={"links": base.links.model_copy(update={"returning_below": 0.0})})
    off = PartitionScorer(Policy(spec, PSEUDO), PSEUDO)
    run(off, [sms_out(number, pid(f"friend{i % 2}"), T0 + i * MIN, n=i) for i in range(4)])
    assert off.apply_link(link).alerts
