"""The false-alarm budget: each rule family's live alert rate against the policy's budget.

The policy states the budget (``budget.alerts_per_100k_per_day``, default 1: at most one alert
per 100,000 active subscribers per day per rule family). A family is the code of an alert's
first reason (``SLOW_LINK_SPREAD``, ``ON_FLAGGED_DEVICE``, ``MODEL_ANOMALY``, …). The meter
counts each family's alerts over the last day of event time (hourly buckets) and divides by the
numbers the scorer tracks (its active subscribers): ``fraudradar_rule_alert_rate`` beside
``fraudradar_rule_alert_budget``, so a family over its budget is one PromQL comparison.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Gauge

from services.scorer import metrics

HOUR_MS = 3_600_000


def parse_iso_ms(text: str) -> int:
    """An alert's ``raised_at`` (RFC 3339, as ``output.iso_ms`` writes it) in epoch ms."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


class BudgetMeter:
    """Alerts per family per hour bucket of event time, for the last 24 buckets."""

    def __init__(self, budget_per_100k_day: float, rate: Gauge | None = None, limit: Gauge | None = None) -> None:
        self.budget = budget_per_100k_day
        self._hours: dict[str, deque[tuple[int, int]]] = defaultdict(deque)
        self.rate = rate or metrics.RULE_ALERT_RATE
        self.limit = limit or metrics.RULE_ALERT_BUDGET

    def alert(self, family: str, event_ms: int) -> None:
        """Count one alert of ``family`` at event time ``event_ms``."""
        hours = self._hours[family]
        hour = event_ms // HOUR_MS
        if hours and hours[-1][0] == hour:
            hours[-1] = (hour, hours[-1][1] + 1)
        elif not hours or hours[-1][0] < hour:
            hours.append((hour, 1))
        else:                                   # a late alert: into its own hour's bucket
            for i, (h, n) in enumerate(hours):
                if h == hour:
                    hours[i] = (h, n + 1)
                    break
            else:
                hours.append((hour, 1))
                self._hours[family] = deque(sorted(hours))

    def rates(self, active: int, now_ms: int) -> dict[str, float]:
        """Each family's alerts in the 24 h before ``now_ms`` per 100k of ``active`` subscribers;
        the gauges set to them and to the budget."""
        first = now_ms // HOUR_MS - 23
        out: dict[str, float] = {}
        for family, hours in self._hours.items():
            while hours and hours[0][0] < first:
                hours.popleft()
            count = sum(n for _, n in hours)
            out[family] = count * 100_000.0 / max(active, 1)
            self.rate.labels(family).set(out[family])
            self.limit.labels(family).set(self.budget)
        return out

    def over_budget(self, active: int, now_ms: int) -> list[str]:
        """The families whose rate is above the budget."""
        return sorted(f for f, r in self.rates(active, now_ms).items() if r > self.budget)


def export_cuts(partitions: Iterable[Mapping[Any, Any]]) -> None:
    """Set the threshold gauges from the partitions' models (``{entity_type: EntityModels}``):
    per rule the policy threshold and the largest derived one, per detector the largest cut."""
    derived: dict[tuple[str, str], tuple[float, float]] = {}
    model_cuts: dict[tuple[str, str], float] = {}
    for models in partitions:
        for entity_type, entity_models in models.items():
            cuts = getattr(entity_models, "cuts", None)
            if cuts is None:
                continue
            for code, (policy_t, derived_t) in cuts.thresholds().items():
                key = (entity_type, code)
                derived[key] = (policy_t, max(derived_t, derived.get(key, (0.0, 0.0))[1]))
            for name, cut in cuts.model_cuts.items():
                model_cuts[(entity_type, name)] = max(cut, model_cuts.get((entity_type, name), cut))
    for (entity_type, code), (policy_t, derived_t) in derived.items():
        metrics.RULE_THRESHOLD.labels(entity_type, code, "policy").set(policy_t)
        metrics.RULE_THRESHOLD.labels(entity_type, code, "derived").set(derived_t)
    for (entity_type, name), cut in model_cuts.items():
        metrics.MODEL_ALERT_CUT.labels(entity_type, name).set(cut)
