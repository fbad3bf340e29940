"""Call forwarding and recycled numbers as inputs to the takeover signals (issue #19, item 5).

``forwarding_near_change``: unconditional forwarding set on a number whose latest SIM swap,
port-in or device change is at most a day old (the rule SIM_SWAP_WITH_FORWARDING, medium alone;
beside the swap's codes it fuses into an alert). ``recycled_recent``: a new subscription after a
cease, for a day (NUMBER_RECYCLED, low). The Python reference and the C twin agree on both.
"""

from __future__ import annotations

import pytest

from services.common.records import Reason, View
from services.scorer import features as F
from services.scorer import layout as L
from services.scorer.partition import PartitionScorer
from services.scorer.state import entity_key
from tests.scorer.helpers import MIN, T0, forwarding, pid, sim_change, sms_out, subscription
from tests.scorer.test_fastcore import CORE, _run
from tests.scorer.test_takeover import PSEUDO, code_sms

VICTIM = pid("forwarded victim")
HOUR = 60 * MIN


def features(eng: PartitionScorer, entity: str = VICTIM) -> dict[str, float]:
    return F.number_features(L.NUMBER.unpack(eng.state.store.numbers.records[entity_key(entity)]))


def reasons(output: object) -> list[Reason]:
    """The reasons of the Risk a view emitted (none when the risk did not move)."""
    risk = getattr(output, "risk", None)
    return list(risk.reasons) if risk is not None else []


def codes(outputs: list[object]) -> list[str]:
    return [r.code for o in outputs for r in reasons(o)]


def alerts_of(outputs: list[object]) -> list[str]:
    return [a.reasons[0].code for o in outputs for a in getattr(o, "alerts", [])]


def owner(eng: PartitionScorer) -> int:
    """An owner texting a friend now and then: the number exists before the change."""
    for i in range(3):
        eng.process(sms_out(VICTIM, pid("friend"), T0 + i * HOUR, n=i))
    return T0 + 3 * HOUR


@pytest.mark.parametrize("forwarding_first", [True, False])
def test_unconditional_forwarding_beside_a_swap_is_the_feature_either_way_round(forwarding_first: bool) -> None:
    eng = PartitionScorer.default(PSEUDO)
    t = owner(eng)
    views = [forwarding(VICTIM, t), sim_change(VICTIM, t + 5 * MIN)]
    for view in views if forwarding_first else [sim_change(VICTIM, t), forwarding(VICTIM, t + 5 * MIN)]:
        eng.process(view)
    assert features(eng)["forwarding_near_change"] == 1.0
    # the swap's day is over: no longer "near" (the number's next act moves the watermark)
    eng.process(sms_out(VICTIM, pid("friend"), t + 25 * HOUR, n=50))
    assert features(eng)["forwarding_near_change"] == 0.0


def test_conditional_forwarding_or_no_change_is_not_the_feature() -> None:
    eng = PartitionScorer.default(PSEUDO)
    t = owner(eng)
    eng.process(forwarding(VICTIM, t))                    # unconditional, but no change: an owner's choice
    assert features(eng)["forwarding_near_change"] == 0.0
    eng.process(forwarding(VICTIM, t + MIN, action="cleared"))
    eng.process(forwarding(VICTIM, t + 2 * MIN, kind="no_answer"))     # voicemail
    eng.process(forwarding(VICTIM, t + 3 * MIN, kind="busy"))
    eng.process(sim_change(VICTIM, t + 10 * MIN))
    assert features(eng)["forwarding_near_change"] == 0.0
    eng.process(forwarding(VICTIM, t + 20 * MIN))
    assert features(eng)["forwarding_near_change"] == 1.0
    eng.process(forwarding(VICTIM, t + 30 * MIN, action="cleared"))
    assert features(eng)["forwarding_near_change"] == 0.0


def test_a_swap_with_forwarding_is_medium_and_with_codes_an_alert() -> None:
    # the swap alone is low; with unconditional forwarding set it is medium (no alert: the record
    # does not know when the forwarding was set); the codes the fraudster came for make it high
    eng = PartitionScorer.default(PSEUDO)
    t = owner(eng)
    swap = eng.process(sim_change(VICTIM, t))
    assert 0 < swap.score < 50
    fwd = eng.process(forwarding(VICTIM, t + 3 * MIN))
    assert "SIM_SWAP_WITH_FORWARDING" in codes([fwd]) and 50 <= fwd.score < 70 and not fwd.alerts
    reason = next(r for r in reasons(fwd) if r.code == "SIM_SWAP_WITH_FORWARDING")
    assert reason.feature == "forwarding_near_change" and "call forwarding" in reason.text
    code = eng.process(code_sms(VICTIM, "3010", t + 6 * MIN, device=pid("new phone"), cell=pid("far cell")))
    assert alerts_of([code]) and "SIM_SWAP_WITH_FORWARDING" in [r.code for r in code.alerts[0].reasons]


def test_the_same_swap_and_codes_without_forwarding_stay_below_an_alert() -> None:
    eng = PartitionScorer.default(PSEUDO)
    t = owner(eng)
    out = [eng.process(sim_change(VICTIM, t)), eng.process(forwarding(VICTIM, t + 3 * MIN, kind="no_answer")),
           eng.process(code_sms(VICTIM, "3010", t + 6 * MIN, device=pid("new phone"), cell=pid("far cell")))]
    assert not alerts_of(out) and "SIM_SWAP_WITH_FORWARDING" not in codes(out)


def test_a_recycled_number_is_a_low_notice_for_a_day() -> None:
    eng = PartitionScorer.default(PSEUDO)
    t = owner(eng)
    eng.process(subscription(VICTIM, t, change="ceased"))
    out = eng.process(subscription(VICTIM, t + 30 * 24 * HOUR, change="new"))
    assert features(eng)["recycled_recent"] == 1.0
    assert "NUMBER_RECYCLED" in codes([out]) and 25 <= out.score < 50 and not out.alerts
    act = eng.process(sms_out(VICTIM, pid("new owner's friend"), t + 30 * 24 * HOUR + HOUR, n=60))
    assert features(eng)["recycled_recent"] == 1.0 and act.score >= 25     # still low (the Risk unchanged)
    eng.process(sms_out(VICTIM, pid("new owner's friend"), t + 31 * 24 * HOUR + 2 * HOUR, n=61))
    assert features(eng)["recycled_recent"] == 0.0


def test_a_first_subscription_or_a_port_in_is_not_recycled() -> None:
    eng = PartitionScorer.default(PSEUDO)
    first, ported = pid("brand new line"), pid("ported line")
    eng.process(subscription(first, T0, change="new"))
    eng.process(subscription(ported, T0, change="ported_in"))
    assert features(eng, first)["recycled_recent"] == features(eng, ported)["recycled_recent"] == 0.0


def _histories() -> list[list[View]]:
    t = T0 + 3 * HOUR
    swap_forward = [sms_out(VICTIM, pid("friend"), T0, n=1), forwarding(VICTIM, t), sim_change(VICTIM, t + MIN),
                    sms_out(VICTIM, pid("stranger"), t + 2 * MIN, n=2),
                    sms_out(VICTIM, pid("stranger"), t + 25 * HOUR, n=3)]
    recycled = [sms_out(VICTIM, pid("friend"), T0, n=1), subscription(VICTIM, t, change="ceased"),
                subscription(VICTIM, t + HOUR, change="new"), sms_out(VICTIM, pid("friend"), t + 2 * HOUR, n=4),
                sms_out(VICTIM, pid("friend"), t + 26 * HOUR, n=5)]
    return [swap_forward, recycled]


@pytest.mark.parametrize("history", _histories(), ids=["swap_forwarding", "recycled"])
def test_the_compiled_twin_computes_the_same_features(history: list[View]) -> None:
    # both features turn on and off along these histories; _run compares every step bit for bit
    assert CORE is not None
    assert _run(history, min_activity=0.5, night=False, protected=False) == 0
