"""The compiled rule matcher agrees with the rule definitions; policy text never runs as code."""

from __future__ import annotations

import random

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
