"""Thresholds from the population against the false-alarm budget (``services.scorer.thresholds``):
rule cuts derived from the normal population, model-only alerts (``MODEL_RARE``) with the
features that made the point rare, and cuts that survive a restore exactly."""

from __future__ import annotations

import math
import pickle
import random
from pathlib import Path

import pytest

from models.histogram import LogHistogram
from services.common.pseudonym import Pseudonymizer, parse_key
from services.common.records import View
from services.devtools.synthetic import Generator
from services.scorer.partition import PartitionScorer
from services.scorer.policy import Policy, Rule
from services.scorer.thresholds import PopulationCuts, alpha_per_scoring, budget_cut
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.scorer.helpers import MIN, call_out, pid, sms_in

PSEUDO = Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY))
SPREAD = Rule(code="SLOW_LINK_SPREAD", label="never-contacted recipients of SMS with links",
              when={"new_recipients_24h": 6, "url_share_lb_24h": 0.3}, points=70, max_points=85)


def population(rng: random.Random, mean: float, gated: float) -> dict[str, float]:
    """A normal entity's point: the rule's gate holds for a share ``gated``; its count is
    exponential with ``mean`` (so a fixed threshold of 6 passes ``gated * exp(-6 / mean)``)."""
    return {"new_recipients_24h": rng.expovariate(1.0 / mean),
            "url_share_lb_24h": 0.4 if rng.random() < gated else 0.1}


def fires(cuts: PopulationCuts, point: dict[str, float], scale: float | None = None) -> bool:
    s = cuts.scale(0) if scale is None else scale
    return point["url_share_lb_24h"] >= 0.3 and point["new_recipients_24h"] >= 6 * s


def learn_censored(cuts: PopulationCuts, rng: random.Random, n: int, mean: float, gated: float) -> None:
    """What the engine does: a point the rule flags is never learned (only the rest is)."""
    for _ in range(n):
        point = population(rng, mean, gated)
        if not fires(cuts, point):
            cuts.learn_one(point)


def test_a_population_the_constant_fires_on_too_often_gets_a_cut_that_holds_the_budget() -> None:
    alpha = 1e-3
    cuts = PopulationCuts("number", [SPREAD], alpha=alpha, warmup=3000, max_scale=4.0)
    rng = random.Random(5)
    learn_censored(cuts, rng, 2900, mean=2.0, gated=0.5)
    assert cuts.scale(0) == 1.0                              # warm-up: the policy's own threshold
    learn_censored(cuts, rng, 60_000, mean=2.0, gated=0.5)
    scale = cuts.scale(0)
    assert 1.5 < scale < 4.0                                 # raised, by the population, not capped
    fresh = [population(rng, 2.0, 0.5) for _ in range(200_000)]
    constant = sum(fires(cuts, p, 1.0) for p in fresh) / len(fresh)
    derived = sum(fires(cuts, p) for p in fresh) / len(fresh)
    assert constant > 10 * alpha                             # the fixed constant: ~2.5 % of normal points
    assert derived <= 2 * alpha                              # the derived cut: within the budget
    assert derived > alpha / 4                               # and not far beyond it (recall kept)
    assert cuts.thresholds() == {"SLOW_LINK_SPREAD": (6.0, 6.0 * scale)}


def test_a_population_within_budget_keeps_the_policy_threshold() -> None:
    cuts = PopulationCuts("number", [SPREAD], alpha=1e-3, warmup=1000, max_scale=4.0)
    learn_censored(cuts, random.Random(1), 30_000, mean=0.5, gated=0.5)   # exp(-12) above 6: far inside
    assert cuts.is_warm and cuts.scale(0) == 1.0


def test_a_flooded_population_cannot_switch_a_rule_off() -> None:
    cuts = PopulationCuts("number", [SPREAD], alpha=1e-4, warmup=1000, max_scale=4.0)
    learn_censored(cuts, random.Random(2), 30_000, mean=20.0, gated=0.9)
    assert cuts.scale(0) == 4.0


def test_a_rule_without_a_count_condition_keeps_its_threshold() -> None:
    recency = Rule(code="RECENT_SIM_SWAP", label="x", when={"sim_change_recency": 0.5}, points=20, max_points=20)
    cuts = PopulationCuts("number", [recency, SPREAD], alpha=1e-3, warmup=10, max_scale=4.0)
    assert cuts.graded(0) is None and cuts.graded(1) == ("new_recipients_24h", 6.0)
    for _ in range(600):
        cuts.learn_one({"sim_change_recency": 1.0, "new_recipients_24h": 0.0})
    assert cuts.scale(0) == 1.0


def test_budget_cut_reads_the_sketch_where_it_resolves_and_extrapolates_beyond() -> None:
    hist = LogHistogram(min_value=1e-2, gamma=1.05, n_buckets=180)
    rng = random.Random(3)
    for _ in range(100_000):
        hist.update(rng.expovariate(1.0))
    # resolvable: the sketch's own quantile (exp(-x) = 0.01 at x = 4.6)
    assert abs((budget_cut(hist, 1e-2) or 0) - math.log(100)) < 0.15
    # 3 decades below what 100k points resolve with 20 above: exp(-x) = 1e-7 at x = 16.1
    assert abs((budget_cut(hist, 1e-7) or 0) - math.log(1e7)) < 1.5
    few = LogHistogram(min_value=1e-2, gamma=1.05, n_buckets=180)
    for i in range(100):
        few.update(1.0 if i < 5 else 0.0)
    assert budget_cut(few, 1e-6) is None                  # 5 points in the tail: no fit, no cut


def test_the_budget_per_scoring_follows_the_policy() -> None:
    policy = Policy.load(PSEUDO)
    assert policy.spec.budget.alerts_per_100k_per_day == 1.0 and policy.spec.budget.max_scale == 4.0
    # 1 alert / 100k / day at one scoring per 10 min (rescore_after) at most
    assert math.isclose(alpha_per_scoring(policy), 1e-5 / 144)
    # the cuts warm up with the models unless the budget names its own warm-up
    assert PopulationCuts.for_policy(policy, "device").warmup == policy.models.warmup == 3000
    spec = policy.spec.model_copy(update={"budget": policy.spec.budget.model_copy(update={"warmup": 500})})
    assert PopulationCuts.for_policy(Policy(spec, PSEUDO), "device").warmup == 500


# -- in the engine -------------------------------------------------------------------------------

def generous(tmp_path: Path, budget: float = 20_000.0, detector: str = "hst") -> Path:
    """The packaged policy, models warm after 200 points and a budget the short test stream can
    resolve (20,000 alerts / 100k / day: a share of 1.4e-3 per scoring)."""
    text = Path("services/scorer/policy.yaml").read_text()
    assert "warmup: 3000" in text and "alerts_per_100k_per_day: 1.0" in text and "detectors: [hst]" in text
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace("warmup: 3000", "warmup: 200").replace("detectors: [hst]", f"detectors: [{detector}]")
                    .replace("alerts_per_100k_per_day: 1.0", f"alerts_per_100k_per_day: {budget}"))
    return path


def busy_caller(number: str, start: int) -> list[View]:
    """Answered calls to 60 new people in an hour, each texting back: no rule's pattern (no
    links, no unanswered calls, as much in as out), but nobody in the population calls like it."""
    views = []
    for i in range(60):
        peer = pid(f"callee{number}{i}")
        views.append(call_out(number, peer, start + i * MIN, duration=240.0))
        views.append(sms_in(number, peer, start + i * MIN + 30_000))
    return views


# HST scores 0 through its first reference window (1000 learned points): it needs a longer stream
@pytest.mark.parametrize(("detector", "normal"), [("ecod", 400), ("hst", 1200)])
def test_a_model_alone_raises_an_alert_with_the_features_that_made_the_point_rare(
        tmp_path: Path, detector: str, normal: int) -> None:
    stream = Generator(seed=3).stream(normal=normal, hours=4, fraud_start_h=2).views
    eng = PartitionScorer.default(PSEUDO, policy_path=generous(tmp_path, detector=detector))
    for view in stream:
        eng.process(view)
    cuts = eng.state.models["number"].cuts
    assert cuts is not None and cuts.is_warm and detector in cuts.model_cuts
    caller = pid("busy-caller")
    outs = [eng.process(v) for v in busy_caller(caller, max(v.occurred_ms for v in stream) + MIN)]
    alerts = [a for o in outs for a in o.alerts]
    assert len(alerts) == 1
    alert = alerts[0]
    # the model alone: the alert level, its reasons MODEL_RARE (no capped MODEL_ANOMALY beside)
    assert alert.level == "high" and [r.code for r in alert.reasons] == ["MODEL_RARE"] * len(alert.reasons)
    assert 2 <= len(alert.reasons) <= 3 and len({r.feature for r in alert.reasons}) == len(alert.reasons)
    assert all(r.feature != "model" and r.feature in r.text for r in alert.reasons)
    assert f"MODEL_RARE ({detector})" in alert.reasons[0].text and "cut" in alert.reasons[0].text
    # the features named are where the caller differs: its calls, new contacts, replies
    assert {r.feature for r in alert.reasons} & {"call_out_5m", "call_out_1h", "call_out_24h", "new_recipients_5m",
                                                 "new_recipients_1h", "new_recipients_24h", "distinct_recipients",
                                                 "one_way_share_24h", "new_recipient_share_1h"}
    assert eng.counters["model_rare"] >= 1
    if detector == "ecod":       # the policy can keep models from alerting alone
        path = generous(tmp_path, detector=detector)
        path.write_text(path.read_text().replace("alone: true", "alone: false"))
        quiet = PartitionScorer.default(PSEUDO, policy_path=path)
        for view in [*stream, *busy_caller(caller, max(v.occurred_ms for v in stream) + MIN)]:
            assert not any(r.code == "MODEL_RARE" for a in quiet.process(view).alerts for r in a.reasons)
        assert quiet.counters["model_rare"] == 0


def test_at_the_packaged_budget_the_cut_lies_far_out_and_the_model_stays_below_the_alert_level(
        tmp_path: Path, views: list[View]) -> None:
    cut = {}
    for budget in (20_000.0, 1.0):
        eng = PartitionScorer.default(PSEUDO, policy_path=generous(tmp_path, budget=budget, detector="ecod"))
        for view in views:
            eng.process(view)
        cuts = eng.state.models["number"].cuts
        assert cuts is not None and cuts.is_warm
        cut[budget] = cuts.model_cuts["ecod"]
    # 1 alert / 100k / day is a share of 7e-8 per scoring: extrapolated far beyond 1.4e-3's cut
    assert cut[1.0] > 2 * cut[20_000.0]
    caller = pid("busy-caller")
    outs = [eng.process(v) for v in busy_caller(caller, max(v.occurred_ms for v in views) + MIN)]
    assert not [a for o in outs for a in o.alerts]
    assert max(o.score for o in outs) < 70


def test_the_cuts_are_restored_exactly_from_checkpoint_and_journal(policy: Path, views: list[View]) -> None:
    from tests.scorer.state.test_modellog import commit, compacted, engine, restore

    eng = engine(policy)
    log: list[tuple[bytes, bytes | None]] = []
    committed = 0
    for i, view in enumerate(views):
        eng.process(view, offset=i)
        if (i + 1) % 500 == 0:
            commit(eng, log, checkpoint=(i + 1) == 1500)
            committed = i + 1
    reference = engine(policy)
    for i, view in enumerate(views[:committed]):
        reference.process(view, offset=i)
    restored = restore(policy, compacted(log))
    report = restored.state.restore_models()
    assert report.checkpoint == "restored" and report.entries > 0
    for entity_type in ("number", "device"):
        want, got = reference.state.models[entity_type].cuts, restored.state.models[entity_type].cuts
        assert want is not None and got is not None and want.n_learned > (256 if entity_type == "number" else 50)
        assert pickle.dumps(got) == pickle.dumps(want)
    assert any(s is not None and s.hist.total > 0 for s in restored.state.models["number"].cuts.rules)


def test_the_engine_applies_the_derived_rule_cut(tmp_path: Path) -> None:
    """A rule whose constant fires on a large share of normal numbers (two calls in an hour): with
    the population's cut (max_scale 4) it flags a fraction of the normal numbers it flags at the
    policy's constant (max_scale 1: the constant is all there is), once the cuts are warm."""
    stream = Generator(seed=3).stream(normal=1200, hours=4, fraud_start_h=2)
    rule = ("  number:\n    - code: BUSY_LINES\n      label: calls placed\n      when: {call_out_1h: 2}\n"
            "      points: 72\n      max_points: 72\n")
    text = generous(tmp_path).read_text().replace("  number:\n", rule, 1)
    flagged: dict[str, int] = {}
    for max_scale in ("1.0", "4.0"):
        path = tmp_path / f"policy-{max_scale}.yaml"
        path.write_text(text.replace("max_scale: 4.0", f"max_scale: {max_scale}"))
        eng = PartitionScorer.default(PSEUDO, policy_path=path)
        cuts = eng.state.models["number"].cuts
        assert cuts is not None
        normal = set()
        for view in stream.views:
            out = eng.process(view)
            for alert in out.alerts:
                if (alert.reasons[0].code == "BUSY_LINES" and cuts.is_warm
                        and (alert.entity_type, alert.entity) not in stream.fraud):
                    normal.add(alert.entity)
        flagged[max_scale] = len(normal)
        threshold = cuts.thresholds()["BUSY_LINES"]
        assert threshold == (2.0, 2.0 * float(max_scale))     # this population pushes it to the cap
    assert flagged["1.0"] > 100 and flagged["4.0"] < flagged["1.0"] / 5
