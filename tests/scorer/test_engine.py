"""The engine: rules, alerts and their ids, cooldown, expiry, replays, restore, policy lists."""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec
import pytest

from services.common.normalise import normalise_number
from services.common.pseudonym import Pseudonymizer, parse_key
from services.common.records import Feedback, View
from services.devtools.synthetic import Generator
from services.scorer import layout as L
from services.scorer.exceptions import CheckpointError
from services.scorer.output import EngineOutput
from services.scorer.partition import PartitionScorer
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.scorer.helpers import MIN, T0, call_out, forwarding, pid, sim_change, sms_in, sms_out, subscription

PSEUDO = Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY))


def engine() -> PartitionScorer:
    return PartitionScorer.default(PSEUDO, seed=0)


def blast(number: str, start: int, n: int = 120, gap_ms: int = 1500) -> list[View]:
    """A farm SIM's blast: activated ten minutes before it texts links to ``n`` strangers in a run
    (a run of link SMS alone stays medium — an organiser's announcement looks the same while it is
    sent; the fresh SIM is the farm's second signal, policy: evidence group spread)."""
    return [sim_change(number, start - 10 * MIN, change="activation"),
            *(sms_out(number, pid(f"victim{number}{i}"), start + i * gap_ms, url=True, n=i) for i in range(n))]


def run(eng: PartitionScorer, views: list[View]) -> list[EngineOutput]:
    return [eng.process(v) for v in views]


def replica_of(source: PartitionScorer) -> PartitionScorer:
    """A fresh engine restored from ``source``'s changelog (another replica taking over)."""
    restored = engine()
    for key, value in source.state.changelog():
        restored.state.apply_changelog(key, value)
    restored.state.finish_restore()
    return restored


def test_sms_blast_raises_one_alert_per_episode_with_reasons() -> None:
    eng = engine()
    farm = pid("farm")
    outs = run(eng, blast(farm, T0))
    alerts = [a for o in outs for a in o.alerts]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.level in ("high", "critical") and alert.score >= 70
    codes = [r.code for r in alert.reasons]
    assert {"SMS_BLAST", "HIGH_RECIPIENT_DIVERSITY", "SLOW_LINK_SPREAD"} & set(codes)
    assert all(r.window in ("5m", "1h", "24h", "lifetime", "event") for r in alert.reasons)
    assert alert.evidence["sms_out_1h"] > 5 and alert.model_version == eng.model_version
    risks = [o.risk for o in outs if o.risk is not None]
    assert risks[-1].level in ("high", "critical") and risks[-1].first_flagged_at is not None
    assert risks[-1].expires_at > risks[-1].updated_at


def test_alert_id_is_deterministic_and_cooldown_starts_a_new_episode() -> None:
    farm = pid("farm2")
    first = [a for o in run(engine(), blast(farm, T0)) for a in o.alerts]
    again = [a for o in run(engine(), blast(farm, T0)) for a in o.alerts]
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    eng = engine()
    two_days = 2 * 24 * 60 * MIN
    alerts = [a for o in run(eng, blast(farm, T0) + blast(farm, T0 + two_days)) for a in o.alerts]
    assert len(alerts) == 2 and alerts[0].alert_id != alerts[1].alert_id


def test_alert_id_is_the_hash_of_entity_episode_and_model_version() -> None:
    """The id names the episode: ``sha256("number|<entity>|<episode start s>|<model version>")[:32]``,
    the episode starting at the alert. An id without the episode would merge two episodes' alerts
    (one webhook, one feed entry); one without the model version would collide across versions."""
    farm = pid("farm3")
    eng = engine()
    two_days = 2 * 24 * 60 * MIN
    alerts = [a for o in run(eng, blast(farm, T0) + blast(farm, T0 + two_days)) for a in o.alerts]
    assert len(alerts) == 2
    for alert in alerts:
        episode_s = int(datetime.fromisoformat(alert.raised_at).timestamp())
        expected = hashlib.sha256(f"number|{farm}|{episode_s}|{eng.model_version}".encode()).hexdigest()[:32]
        assert alert.alert_id == expected
    assert alerts[1].raised_at > alerts[0].raised_at


def test_alert_carries_its_window_evidence_and_reasons() -> None:
    farm = pid("farm4")
    eng = engine()
    views = blast(farm, T0)
    outs = run(eng, views)
    at = next(i for i, o in enumerate(outs) if o.alerts)
    alert, view = outs[at].alerts[0], views[at]
    span_s = {"5m": 300, "1h": 3600, "24h": 86400}.get(alert.reasons[0].window, 3600)
    end = datetime.fromisoformat(alert.window.end)
    assert alert.window.end == alert.raised_at and end.timestamp() * 1000 == view.occurred_ms
    assert end.timestamp() - datetime.fromisoformat(alert.window.start).timestamp() == span_s
    assert 1 <= len(alert.reasons) <= 5 and alert.score == outs[at].score
    assert alert.evidence["views_total"] == float(at + 1)
    assert all(v >= 0 and v == round(v, 2) for v in alert.evidence.values())
    assert (alert.entity_type, alert.entity, alert.model_version) == ("number", farm, eng.model_version)
    assert alert.number_enc is None and alert.key_id is None          # the views carried no sealed number
    assert alert.ingested_ms == view.ingested_ms


def test_normal_subscriber_is_quiet() -> None:
    eng = engine()
    me, friends = pid("me"), [pid(f"f{i}") for i in range(6)]
    outs = run(eng, [sms_out(me, friends[i % 6], T0 + i * 7 * MIN, n=i) for i in range(60)])
    assert all(o.score < 25 and o.risk is None and not o.alerts for o in outs)


def test_spoofed_protected_number_is_critical() -> None:
    eng = engine()
    bank = PSEUDO("msisdn", normalise_number("020 555 0100", "NL").value)
    out = eng.process(call_out(bank, pid("victim"), T0))
    assert out.alerts and out.alerts[0].level == "critical"
    assert out.alerts[0].reasons[0].code == "SPOOFED_PROTECTED_NUMBER"


def test_sim_swap_risk_is_emitted_even_at_score_zero() -> None:
    eng = engine()
    me = pid("swapped")
    out = eng.process(sim_change(me, T0, "swap"))
    assert out.risk is not None and out.risk.sim_changed_at is not None
    assert out.risk.sim_changed_at.startswith("2026-")


def test_sim_swap_then_otp_and_blast_alerts() -> None:
    eng = engine()
    me = pid("victim-of-takeover")
    views = [sim_change(me, T0, "swap", device=pid("new-phone"))]
    views += [sms_in(me, pid("bank-sender"), T0 + (i + 1) * MIN, peer_kind="alphanumeric") for i in range(3)]
    views += [sms_out(me, pid(f"mule{i}"), T0 + 5 * MIN + i * 20_000, url=True, n=i) for i in range(15)]
    alerts = [a for o in run(eng, views) for a in o.alerts]
    assert len(alerts) == 1 and alerts[0].reasons[0].code == "SIM_SWAP_THEN_SPREAD"
    # the first link SMS after the swap raised it: 5 minutes after the swap
    assert alerts[0].raised_at.startswith("2026-09-21") and "RECENT_SIM_SWAP" in [r.code for r in alerts[0].reasons]


def test_the_first_link_sms_to_a_stranger_after_a_swap_alerts_at_any_event_time() -> None:
    # one SMS makes counts of exactly 1 only up to rounding (forward decay): at ~1 event time in 4
    # a literal "url_sms_1h >= 1" misses it and flags the takeover only at a later SMS
    missed = []
    for k in range(40):
        eng = engine()
        me = pid(f"victim{k}")
        t = T0 + k * 7_919_113          # spread over ~3.7 days of event times
        eng.process(sim_change(me, t, "swap", device=pid(f"new-phone{k}")))
        # the counters' base time is the swap: the SMS's weight depends on its delay after it
        eng.process(sms_out(me, pid(f"contact{k}"), t + 2 * MIN))
        out = eng.process(sms_out(me, pid(f"stranger{k}"), t + 2 * MIN + k * 4_111, url=True))
        if not (out.alerts and out.alerts[0].reasons[0].code == "SIM_SWAP_THEN_SPREAD"):
            missed.append(k)
    assert missed == []


def test_one_link_sms_after_a_swap_is_not_a_spread() -> None:
    """An honest swapper whose first SMS on the new SIM carries a link: medium risk, no alert."""
    eng = engine()
    me = pid("honest-swapper")
    eng.process(sim_change(me, T0, "swap"))
    out = eng.process(sms_out(me, pid("a-new-friend"), T0 + 30 * MIN, url=True))
    assert not out.alerts and out.score < 70
    # a second SMS within the hour, and it is one
    out = eng.process(sms_out(me, pid("another-stranger"), T0 + 40 * MIN, url=True))
    assert out.alerts and out.alerts[0].reasons[0].code == "SIM_SWAP_THEN_SPREAD"


def test_flags_expire_and_idle_entities_are_forgotten() -> None:
    eng = engine()
    farm, bystander = pid("farm3"), pid("bystander")
    run(eng, blast(farm, T0))
    ttl = eng.policy.ttl_ms
    # flags last at most 7 days (critical): 8 days later the flag is expired, the state still kept
    # (the farm SIM's activation date stays for CAMARA, so its Risk is rewritten, unflagged)
    out = eng.process(sms_out(bystander, pid("x"), T0 + 8 * 24 * 60 * MIN))
    cleared = [r for r in out.risk_updates if r.entity == farm]
    assert cleared and cleared[0].level == "none" and cleared[0].score == 0
    assert eng.features_of("number", farm) is not None
    out = eng.process(sms_out(bystander, pid("x"), T0 + ttl + 60 * MIN))
    assert eng.features_of("number", farm) is None
    assert eng.counters["forgotten"] >= 1


def test_replayed_offsets_are_skipped() -> None:
    eng = engine()
    views = blast(pid("farm4"), T0, n=60)
    first = [eng.process(v, offset=i) for i, v in enumerate(views)]
    replay = [eng.process(v, offset=i) for i, v in enumerate(views)]
    assert all(o.skipped and not o.alerts and o.risk is None for o in replay)
    assert sum(len(o.alerts) for o in first) == 1


def test_changelog_restore_continues_identically() -> None:
    gen = Generator(seed=3)
    lab = gen.stream(normal=200, hours=3, fraud_start_h=1.5)
    half = len(lab.views) // 2
    whole = engine()
    out_whole = [whole.process(v, offset=i) for i, v in enumerate(lab.views)]
    first = engine()
    for i, v in enumerate(lab.views[:half]):
        first.process(v, offset=i)
    restored = replica_of(first)
    assert restored.state.restore_checkpoint(first.state.checkpoint())
    # a crash replays some already-applied views: they are skipped (an A2P sender ID's views keep
    # no state and apply nothing: a replay of one emits nothing either)
    out_rest = {i: restored.process(v, offset=i) for i, v in enumerate(lab.views) if i >= half - 50}
    replays = [out_rest[i] for i in range(half - 50, half)]
    assert all(o.skipped or (o.score == 0 and not o.emits) for o in replays)
    assert sum(o.skipped for o in replays) >= 40
    ids_whole = {a.alert_id for o in out_whole[half:] for a in o.alerts}
    ids_rest = {a.alert_id for o in out_rest.values() for a in o.alerts}
    assert ids_whole and ids_whole == ids_rest
    assert [o.score for o in out_whole[half:]] == [out_rest[i].score for i in range(half, len(lab.views))]


def test_tampered_checkpoint_is_rejected() -> None:
    eng = engine()
    blob = bytearray(eng.state.checkpoint())
    blob[-1] ^= 1
    with pytest.raises(CheckpointError):
        engine().state.restore_checkpoint(bytes(blob))


def test_feedback_trains_the_supervised_learner() -> None:
    eng = engine()
    farm, fine = pid("fb-farm"), pid("fb-fine")
    run(eng, blast(farm, T0, n=40))
    run(eng, [sms_out(fine, pid("friend"), T0 + i * MIN, n=i) for i in range(5)])
    for i in range(6):
        eng.learn_feedback(Feedback(report_id=f"r{i}", partner="bank", entity_type="number", entity=farm,
                                    label="confirmed_fraud", reported_at="2026-09-21T00:00:00Z"))
        eng.learn_feedback(Feedback(report_id=f"q{i}", partner="bank", entity_type="number", entity=fine,
                                    label="false_positive", reported_at="2026-09-21T00:00:00Z"))
    eng.learn_feedback(Feedback(report_id="z", partner="bank", entity_type="number", entity=pid("unknown"),
                                label="false_positive", reported_at="2026-09-21T00:00:00Z"))
    learner = eng.state.models["number"].feedback
    assert learner.ready and eng.counters["feedback_unmatched"] == 1
    assert (learner.proba_one(eng.features_of("number", farm) or {}) or 0) > 0.5


def test_state_is_compact_per_entity() -> None:
    eng = engine()
    for i in range(20_000):
        eng.process(sms_out(pid(f"n{i}"), pid(f"p{i}"), T0 + i))
    per_entity = eng.state.state_bytes() / sum(eng.state.entities().values())
    assert per_entity < 512
    assert L.NUMBER.size < 400


def test_wangiri_is_unanswered_calls_from_outside_not_an_agents_unlucky_morning() -> None:
    # six unanswered calls to strangers within minutes: from a number abroad (reported only by the
    # recipients' operators) it is wangiri; from a reporting operator's own subscriber it is not
    def calls(caller: str, on_net: bool) -> list[View]:
        return [msgspec.structs.replace(call_out(caller, pid(f"{caller}-callee{i}"), T0 + i * 30_000, duration=0.0,
                                                 answered=False), subscriber=on_net) for i in range(6)]

    abroad = [a for o in run(engine(), calls(pid("premium-abroad"), on_net=False)) for a in o.alerts]
    assert len(abroad) == 1 and abroad[0].reasons[0].code == "WANGIRI_CALLS"
    agent = run(engine(), calls(pid("call-centre-agent"), on_net=True))
    assert not [a for o in agent for a in o.alerts]
    assert "WANGIRI_CALLS" not in {r.code for o in agent if o.risk for r in o.risk.reasons}
    # a business landline (off-net too) whose customers call it as often as it calls them
    office = pid("office-landline")
    inbound = [msgspec.structs.replace(call_out(pid(f"customer{i}"), office, T0 - 60 * MIN + i * 5 * MIN), role="in",
                                       entity=office, peer=pid(f"customer{i}"), subscriber=False) for i in range(6)]
    landline = run(engine(), [*inbound, *calls(office, on_net=False)])
    assert not [a for o in landline for a in o.alerts]


def test_slow_link_spread_judges_the_link_share_not_a_lucky_first_hour() -> None:
    """A business (15 % links) that sent 5 links in its first 9 SMS by chance vs a farm SIM (6 of 8)."""
    def texts(sender: str, links: list[bool]) -> list[View]:
        return [sms_out(sender, pid(f"{sender}-to{i}"), T0 + i * 5 * MIN, url=url) for i, url in enumerate(links)]

    business = run(engine(), texts(pid("dentist"), [True, False, True, True, False, False, True, False, True]))
    assert not [a for o in business for a in o.alerts]
    farm = [a for o in run(engine(), texts(pid("farm-sim"), [True, True, False, True, True, False, True, True]))
            for a in o.alerts]
    assert len(farm) == 1 and farm[0].reasons[0].code == "SLOW_LINK_SPREAD"


def test_an_activation_is_the_latest_sim_and_device_change() -> None:
    """CAMARA SIM Swap 2.1.0 / Device Swap 1.0.0: a new subscription (the SIM's first install,
    the number's first device association) is the latest change until a swap follows it."""
    eng = engine()
    me = pid("new-subscriber")
    out = eng.process(sim_change(me, T0, "activation", device=pid("first-phone")))
    assert out.risk is not None
    assert out.risk.sim_changed_at == out.risk.device_changed_at == "2026-09-21T14:13:20.000Z"
    later = eng.process(sim_change(me, T0 + 90 * MIN, "swap"))
    assert later.risk is not None and later.risk.sim_changed_at == "2026-09-21T15:43:20.000Z"
    assert later.risk.device_changed_at == "2026-09-21T14:13:20.000Z"   # the activation still


def test_a_swap_before_a_later_activation_gives_way_to_it() -> None:
    eng = engine()
    me = pid("recycled")
    eng.process(sim_change(me, T0, "swap"))
    eng.process(sim_change(me, T0 + 60 * MIN, "device_change"))
    out = eng.process(sim_change(me, T0 + 120 * MIN, "activation"))
    assert out.risk is not None
    assert out.risk.sim_changed_at == out.risk.device_changed_at == "2026-09-21T16:13:20.000Z"


def test_a_first_sighting_is_no_activation() -> None:
    """The first time this system sees a number is not the operator's activation of it."""
    eng = engine()
    me = pid("just-seen")
    outs = [eng.process(sms_out(me, pid("friend"), T0, device=pid("phone"))),
            eng.process(sms_in(me, pid("friend"), T0 + MIN))]
    assert all(o.risk is None or (o.risk.sim_changed_at is None and o.risk.device_changed_at is None)
               for o in outs)


def test_call_forwarding_set_and_cleared_is_on_the_risk_record_of_a_quiet_number() -> None:
    """A forwarding change is a change of the line: a Risk even for a quiet, long-known number."""
    eng = engine()
    me = pid("forwarded")
    eng.process(sms_out(me, pid("friend"), T0))
    out = eng.process(forwarding(me, T0 + 3 * 86_400_000, "set", "unconditional"))
    assert out.risk is not None and out.risk.forwarding == ["unconditional"]
    assert out.risk.first_seen_at == "2026-09-21T14:13:20.000Z" and out.risk.activated_at is None
    out = eng.process(forwarding(me, T0 + 3 * 86_400_000 + MIN, "set", "busy"))
    assert out.risk is not None and out.risk.forwarding == ["unconditional", "busy"]
    out = eng.process(forwarding(me, T0 + 3 * 86_400_000 + 2 * MIN, "cleared", "unconditional"))
    assert out.risk is not None and out.risk.forwarding == ["busy"]


def test_a_new_subscription_after_a_cease_recycles_the_number() -> None:
    eng = engine()
    me = pid("recycled-line")
    out = eng.process(subscription(me, T0, "new"))
    assert out.risk is not None and out.risk.line == "active"
    assert out.risk.activated_at == out.risk.sim_changed_at == "2026-09-21T14:13:20.000Z"
    eng.process(forwarding(me, T0 + MIN, "set", "no_answer"))
    out = eng.process(subscription(me, T0 + 86_400_000, "ceased"))
    assert out.risk is not None and out.risk.line == "ceased" and out.risk.forwarding is None
    out = eng.process(subscription(me, T0 + 40 * 86_400_000, "new"))
    assert out.risk is not None and out.risk.line == "recycled"
    assert out.risk.activated_at == "2026-10-31T14:13:20.000Z"


def test_a_port_in_is_a_sim_change_and_starts_the_tenure() -> None:
    eng = engine()
    me = pid("ported")
    out = eng.process(subscription(me, T0, "ported_in", contract="PAYG"))
    assert out.risk is not None and out.risk.line == "active"
    assert out.risk.sim_changed_at == out.risk.activated_at == "2026-09-21T14:13:20.000Z"


def test_the_line_survives_a_restore_from_the_changelog() -> None:
    eng = engine()
    me = pid("restored-line")
    eng.process(subscription(me, T0, "new"))
    eng.process(subscription(me, T0 + MIN, "ceased"))
    eng.process(subscription(me, T0 + 2 * MIN, "new"))
    eng.process(forwarding(me, T0 + 3 * MIN, "set", "not_reachable"))
    restored = replica_of(eng)
    assert restored.state.restore_checkpoint(eng.state.checkpoint())
    out = restored.process(forwarding(me, T0 + 4 * MIN, "set", "busy"))
    assert out.risk is not None and out.risk.line == "recycled"
    assert out.risk.forwarding == ["busy", "not_reachable"]
