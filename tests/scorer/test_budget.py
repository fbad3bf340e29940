"""The false-alarm budget: the policy states it, the meter reports each family's live rate."""

from __future__ import annotations

from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from services.common.pseudonym import Pseudonymizer, parse_key
from services.scorer.budget import HOUR_MS, BudgetMeter, parse_iso_ms
from services.scorer.output import iso_ms
from services.scorer.policy import Policy
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.scorer.helpers import T0


def meter() -> tuple[BudgetMeter, CollectorRegistry]:
    registry = CollectorRegistry()
    return BudgetMeter(1.0, Gauge("rate", "r", ["family"], registry=registry),
                       Gauge("budget", "b", ["family"], registry=registry)), registry


def test_each_family_is_measured_against_the_budget_over_the_last_day() -> None:
    m, registry = meter()
    for i in range(3):
        m.alert("SLOW_LINK_SPREAD", T0 + i * HOUR_MS)
    m.alert("SIM_HOPPING", T0)
    assert m.rates(200_000, T0 + 2 * HOUR_MS) == {"SLOW_LINK_SPREAD": 1.5, "SIM_HOPPING": 0.5}
    assert m.over_budget(200_000, T0 + 2 * HOUR_MS) == ["SLOW_LINK_SPREAD"]
    text = generate_latest(registry).decode()
    assert 'rate{family="SLOW_LINK_SPREAD"} 1.5' in text and 'budget{family="SIM_HOPPING"} 1.0' in text
    # a day later the first hour's alerts have left the window
    assert m.rates(200_000, T0 + 24 * HOUR_MS + 1) == {"SLOW_LINK_SPREAD": 1.0, "SIM_HOPPING": 0.0}
    m.alert("SIM_HOPPING", T0 + 10 * HOUR_MS)     # late: into its own hour
    assert m.rates(100_000, T0 + 24 * HOUR_MS + 1)["SIM_HOPPING"] == 1.0


def test_the_policy_states_the_budget_and_no_threshold_cites_a_seed() -> None:
    text = Path("services/scorer/policy.yaml").read_text()
    assert yaml.safe_load(text)["budget"] == {"alerts_per_100k_per_day": 1.0, "max_scale": 4.0}
    assert Policy.load(Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY))).spec.budget.alerts_per_100k_per_day == 1.0
    assert "seed" not in text.lower()


def test_raised_at_round_trips() -> None:
    assert parse_iso_ms(iso_ms(T0 + 123)) == T0 + 123
