"""The compiled rule matcher agrees with the rule definitions; policy text never runs as code."""

from __future__ import annotations

import math
import random
import struct

from services.scorer.policy import Rule
from services.scorer.scoring import compile_matcher, rule_points


def test_compiled_matcher_equals_rule_points() -> None:
    rng = random.Random(2)
    names = ["a_1h", "b_24h", "c_share", "d"]
    rules = [Rule(code=f"R{i}", label="x", points=50, max_points=60,
                  when={n: round(rng.uniform(0, 5), 2) for n in rng.sample(names, rng.randint(1, 3))})
             for i in range(8)]
    match = compile_matcher(rules)
    for _ in range(2000):
        features = {n: rng.uniform(0, 6) for n in names if rng.random() < 0.8}
        assert match(features) == [i for i, r in enumerate(rules) if rule_points(r, features) > 0]


def test_hostile_feature_names_are_data() -> None:
    rule = Rule(code="EVIL", label="x", points=50, max_points=50,
                when={"x'), __import__('os').system('false'), ('": 1.0})
    match = compile_matcher([rule])
    assert match({}) == []
    assert match({"x'), __import__('os').system('false'), ('": 2.0}) == [0]


def test_a_single_event_meets_a_threshold_of_one_despite_rounding() -> None:
    # forward-decayed counts are exp(gap/tau) * exp(-gap/tau): one event "now" is often 1 - 1 ulp
    one_event = next(v for v in (math.exp(g / 3.6e6) * math.exp(-g / 3.6e6) for g in range(1, 10_000, 7)) if v < 1.0)
    assert one_event < 1.0
    rule = Rule(code="FIRST_LINK", label="x", points=62, max_points=75, when={"url_sms_1h": 1, "new_recipients_1h": 1})
    match = compile_matcher([rule])
    features = {"url_sms_1h": one_event, "new_recipients_1h": one_event}
    assert match(features) == [0] and rule_points(rule, features) == 62
    # real decay is not forgiven: an event 1 ms old in the 5 min window is 3.3e-6 short of 1
    decayed = {"url_sms_1h": math.exp(-1 / 300_000), "new_recipients_1h": 1.0}
    assert match(decayed) == [] and rule_points(rule, decayed) == 0.0


def test_a_share_of_float32_stored_counts_meets_its_threshold() -> None:
    # counters live as float32 between views: 1 of 2 SMS with a link, read back, is 5e-9 short of 1/4
    f32 = struct.unpack("<ff", struct.pack("<ff", math.exp(120_000 / 3.6e6), 0.0))[0]
    sms = f32 * math.exp(-120_000 / 3.6e6) + 1.0
    share = 1.0 / (sms + 2.0)
    assert share < 0.25
    rule = Rule(code="SHARE", label="x", points=62, max_points=75, when={"url_share_1h": 0.25})
    assert compile_matcher([rule])({"url_share_1h": share}) == [0] and rule_points(rule, {"url_share_1h": share}) == 62
