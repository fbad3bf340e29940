"""Campaign ids: entities acting together from one place share one, across devices and replicas.

A farm is several modems or phones at one site, each holding SIMs. Each modem is a device of
its own, so anchoring a campaign on the device gave one campaign per modem; the anchor is now
the site (the lowest of the entity's recent cells) and the day, and numbers linked by a flagged
device join that device's campaign, directly or through a remembered broadcast.
"""

from __future__ import annotations

import msgspec

from services.common.records import View
from services.scorer.output import EngineOutput
from services.scorer.partition import PartitionScorer
from tests.scorer.helpers import MIN, T0, device_view, pid, sim_change, sms_out
from tests.scorer.test_engine import blast, engine, replica_of, run


def modem(eng: PartitionScorer, device: str, cell: str | None, start: int = T0, n_sims: int = 6) -> list[EngineOutput]:
    """A modem cycling through SIMs at ``cell``, each sending a few SMS (SIM_HOPPING)."""
    views: list[View] = []
    for s in range(n_sims):
        for k in range(3):
            t = start + (s * 3 + k) * MIN
            views.append(msgspec.structs.replace(
                device_view(device, pid(f"sim{device}{s}"), pid(f"imsi{device}{s}"), t, pid(f"v{device}{s}{k}")),
                cell=cell))
    return run(eng, views)


def campaigns(outs: list[EngineOutput]) -> set[str | None]:
    return {a.campaign_id for o in outs for a in o.alerts}


def test_two_modems_of_one_farm_share_a_campaign_on_different_replicas() -> None:
    site = pid("farm-cell")
    # each modem on its own engine: two partitions, two replicas that never talk
    a = modem(engine(), pid("modem-a"), site)
    b = modem(engine(), pid("modem-b"), site, start=T0 + 7 * MIN)
    assert len(campaigns(a)) == 1 and campaigns(a) == campaigns(b)
    assert None not in campaigns(a)
    # a modem at another site the same day is another campaign
    other = modem(engine(), pid("modem-c"), pid("elsewhere"))
    assert campaigns(other) and campaigns(other).isdisjoint(campaigns(a))
    # the same site on another day is another campaign
    later = modem(engine(), pid("modem-d"), site, start=T0 + 24 * 60 * MIN)
    assert campaigns(later).isdisjoint(campaigns(a))


def test_a_device_seen_on_no_cell_anchors_on_itself() -> None:
    a = campaigns(modem(engine(), pid("modem-x"), None))
    b = campaigns(modem(engine(), pid("modem-y"), None))
    assert len(a) == 1 and None not in a and a.isdisjoint(b)


def test_numbers_linked_by_a_modem_join_its_campaign_directly_and_through_a_broadcast() -> None:
    site = pid("farm-cell-2")
    device = pid("modem-e")
    outs = modem(engine(), device, site)
    (campaign,) = campaigns(outs)
    links = [link for o in outs for link in o.links]
    assert links and all(link.campaign_id == campaign for link in links)
    numbers = engine()
    direct = [numbers.apply_link(link) for link in links if not link.broadcast]
    assert {a.campaign_id for o in direct for a in o.alerts} == {campaign}
    assert {o.risk.campaign_id for o in direct if o.risk is not None} == {campaign}
    # a SIM seen on the modem only after the broadcast is linked from the remembered device,
    # also after that memory went through the changelog (another replica's restore)
    broadcast = next(link for link in links if link.broadcast)
    first = engine()
    first.apply_link(broadcast)
    restored = replica_of(first)
    late = restored.process(sms_out(pid("late-sim-e"), pid("w"), T0 + 30 * MIN, device=device))
    assert [a.campaign_id for a in late.alerts] == [campaign]


def test_a_link_written_before_campaign_ids_travelled_falls_back_to_the_device() -> None:
    outs = modem(engine(), pid("modem-f"), pid("farm-cell-3"))
    link = next(link for o in outs for link in o.links if not link.broadcast)
    old = msgspec.structs.replace(link, campaign_id=None)
    got = engine().apply_link(old).alerts[0].campaign_id
    assert got is not None and got.startswith("cmp-") and got not in campaigns(outs)
    # the wire form of an old link has no campaign_id and still decodes
    assert b"campaign_id" not in msgspec.json.encode(old)


def test_numbers_of_one_site_flagged_on_their_own_share_the_campaign() -> None:
    site = pid("blast-cell")
    outs: list[EngineOutput] = []
    for name in ("s1", "s2"):
        views = [msgspec.structs.replace(v, cell=site) for v in blast(pid(name), T0, n=120)]
        outs += run(engine(), views)
    got = campaigns(outs)
    assert len(got) == 1 and None not in got


def test_a_linked_numbers_later_risk_keeps_the_campaign() -> None:
    """A SIM flagged only through its modem: a later Risk from its own views (here a SIM change)
    still names the farm's campaign, instead of dropping it because its own level is low."""
    site = pid("farm-cell-4")
    outs = modem(engine(), pid("modem-g"), site)
    (campaign,) = campaigns(outs)
    link = next(link for o in outs for link in o.links if not link.broadcast)
    numbers = engine()
    numbers.apply_link(link)
    numbers.process(sms_out(link.number, pid("w"), T0 + 30 * MIN, cell=site))
    risk = numbers.process(sim_change(link.number, T0 + 31 * MIN)).risk
    assert risk is not None and risk.level == "high" and risk.reasons[0].code == "ON_FLAGGED_DEVICE"
    assert risk.campaign_id == campaign
