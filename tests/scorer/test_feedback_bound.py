"""Issue #21: one partner's labels weigh at most a bounded share of what the scorer's feedback
learner learns, so no single partner can steer the scores by reporting in bulk."""

from __future__ import annotations

from services.common.records import Feedback
from services.scorer.partition import PartitionScorer
from tests.scorer.helpers import MIN, T0, pid, sms_out


def _engine() -> PartitionScorer:
    from tests.scorer.test_engine import engine

    return engine()


def _label(eng: PartitionScorer, partner: str, entity: str, n: int, fraud: bool) -> None:
    eng.learn_feedback(Feedback(report_id=f"{partner}-{n}", partner=partner, entity_type="number", entity=entity,
                                label="confirmed_fraud" if fraud else "false_positive",
                                reported_at="2026-09-21T00:00:00Z"))


def test_one_partner_cannot_outweigh_the_others() -> None:
    eng = _engine()
    numbers = [pid(f"fb-bound-{i}") for i in range(20)]
    for i, number in enumerate(numbers):
        eng.process(sms_out(number, pid(f"peer-{i}"), T0 + i * MIN, n=i))
    learner = eng.state.models["number"].feedback
    allowance = 4 * learner.min_each
    for n in range(500):                       # one partner reports in bulk
        _label(eng, "bank-flood", numbers[n % len(numbers)], n, fraud=False)
    flood = learner.n_negative                  # the flooder's labels that were learned
    share = eng.policy.models.feedback_partner_share
    assert flood <= allowance / (1 - share) + 1    # alone: the allowance, scaled by the share
    assert eng.counters["feedback_capped"] == 500 - flood == 500 - eng.feedback_by_partner["bank-flood"]
    for n in range(60):                        # others report: the flooder's share may grow with them
        _label(eng, f"bank-{n % 3}", numbers[n % len(numbers)], n, fraud=True)
    for n in range(500, 1000):
        _label(eng, "bank-flood", numbers[n % len(numbers)], n, fraud=False)
    learned = eng.feedback_by_partner
    assert learned["bank-flood"] <= share * sum(learned.values()) + allowance
    assert learner.n_positive + learner.n_negative == sum(learned.values())
