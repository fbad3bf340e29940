"""Entity-level detection metrics of a backtest (pure functions, no I/O).

Definitions (also in docs/backtest.md):

- An entity is ``(entity_type, pseudonym)``. A truth entity belongs to one or more scenarios;
  its start is the earliest start given for it in that scenario.
- A *qualifying alert* has a level at or above the threshold (default ``high``).
- A truth entity is *detected* in a scenario when a qualifying alert on it was raised at or
  after the scenario's start for it, or at most ``lead_ms`` before it (the scorer's alert
  cooldown, 24 h by default: within it the scorer does not alert the same entity again): the
  entity was flagged when its first act came (e.g. a farm SIM through its phone, flagged at the
  farm's SIM activations) and its time to detect is 0. Otherwise time to detect = first alert
  at or after start − start (event time). Qualifying alerts longer before the start are ignored
  (neither hit nor false alarm): a SIM-swap victim was a normal subscriber until the swap.
- A *false alarm* is a non-truth entity with at least one qualifying alert.
- Overall precision = detected truth entities / (detected truth entities + false alarms);
  recall = detected / truth entities.
- Per-scenario precision = detected_s / (detected_s + false alarms of the entity types the
  scenario labels): the precision one would see if this were the only fraud in the traffic.
- False alarms per 100k per day = false alarms / distinct normal subscriber numbers seen
  × 100 000 / run length in days.
- ROC AUC and PR AUC (average precision) rank every entity the scorer saw, plus truth
  entities it never saw (score 0), by the highest score it ever gave them (its own score or the
  score of an alert on it, e.g. a link from a flagged device).
- ``victims_before_alert`` of a truth entity = distinct recipients it contacted (sent an SMS
  or placed a call to) from its start up to its detecting alert; an entity never detected
  counts every recipient it contacted from its start on (the harm was not stopped). Per
  scenario the median and p90 over its entities.
- ``hard_negatives``: per class of labelled normal entities (truth lines with ``"label":
  "negative"``), how many there were, how many were flagged at or above the threshold (and at
  any level), the levels of their highest alerts and the reason codes of those alerts.
  ``unlabelled`` counts false alarms on normal entities outside every class.

Undefined values (no detection → no time to detect; one class only → no AUC) are ``None``
(JSON ``null``); a ratio with an empty denominator is 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from services.common.records import LEVELS

EntityKey = tuple[str, str]   # (entity_type, pseudonym)

# an alert this long before an entity's start still counts (time to detect 0): it was flagged
# when it first acted. The default policy's flags.cooldown: within it the scorer raises no
# second alert for the entity, so a later alert cannot be expected.
PRE_START_LEAD_MS = 86_400_000


@dataclass(frozen=True)
class TruthEntity:
    scenario: str
    entity_type: str
    entity: str              # pseudonym
    start_ms: int
    end_ms: int
    instance: str = ""       # the scenario instance (one campaign); "" when the truth file has none

    @property
    def key(self) -> EntityKey:
        return (self.entity_type, self.entity)


@dataclass(frozen=True)
class NegativeEntity:
    """A normal entity of a hard-negative class (``"label": "negative"`` in the truth file)."""

    cls: str
    entity_type: str
    entity: str              # pseudonym

    @property
    def key(self) -> EntityKey:
        return (self.entity_type, self.entity)


@dataclass(frozen=True)
class AlertPoint:
    entity_type: str
    entity: str
    level: str
    raised_ms: int
    campaign_id: str | None = None
    reasons: tuple[str, ...] = ()    # reason codes of the alert

    @property
    def key(self) -> EntityKey:
        return (self.entity_type, self.entity)


def level_at_least(level: str, threshold: str) -> bool:
    return LEVELS.index(level) >= LEVELS.index(threshold)  # type: ignore[arg-type]


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else 0.0


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _aucs(truth_keys: set[EntityKey], max_scores: Mapping[EntityKey, float]) -> tuple[float | None, float | None]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    keys = set(max_scores) | truth_keys
    if not keys:
        return None, None
    ordered = sorted(keys)
    y = np.asarray([k in truth_keys for k in ordered], dtype=np.int8)
    s = np.asarray([float(max_scores.get(k, 0.0)) for k in ordered], dtype=np.float64)
    if y.min() == y.max():
        return None, None
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def _in_order(names: Iterable[str], preferred: Iterable[str]) -> list[str]:
    """``names`` in the ``preferred`` order (the simulator's scenarios), the others sorted after."""
    known = set(names)
    first = [name for name in preferred if name in known]
    return first + sorted(known - set(first))


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def campaign_grouping(truth: list[TruthEntity], campaign_of: Mapping[EntityKey, str | None],
                      scenario_order: Iterable[str] = ()) -> dict[str, object] | None:
    """How well ``campaign_id`` groups the alerted entities by scenario instance (None without instances).

    Over the entities with a counted alert (``campaign_of``: detected truth entities and false
    alarms, each with the campaign of that alert): ``pair_recall`` = pairs of one instance that
    share a campaign / pairs of one instance; ``pair_precision`` = pairs sharing a campaign that
    are of one instance / pairs sharing a campaign (a false alarm is an instance of its own);
    per scenario, ``campaigns_per_instance`` = distinct campaigns (an alert without one counts
    as its own) per instance with at least two alerted entities: 1.0 when every such instance
    is one campaign.
    """
    instance_of = {t.key: t.instance for t in truth if t.instance}
    if not instance_of:
        return None
    scenario_of = {t.instance: t.scenario for t in truth if t.instance}
    members: dict[str, list[str | None]] = {}
    by_campaign: dict[str, int] = {}
    grouped: dict[tuple[str, str], int] = {}
    for key, campaign in campaign_of.items():
        instance = instance_of.get(key)
        if instance is not None:
            members.setdefault(instance, []).append(campaign)
        if campaign is not None:
            by_campaign[campaign] = by_campaign.get(campaign, 0) + 1
            if instance is not None:
                grouped[(instance, campaign)] = grouped.get((instance, campaign), 0) + 1
    same_instance = sum(_pairs(len(m)) for m in members.values())
    same_both = sum(_pairs(n) for n in grouped.values())
    same_campaign = sum(_pairs(n) for n in by_campaign.values())
    fragments: dict[str, list[int]] = {}
    for instance, campaigns in members.items():
        if len(campaigns) >= 2:
            distinct = len({c for c in campaigns if c is not None}) + sum(1 for c in campaigns if c is None)
            fragments.setdefault(scenario_of[instance], []).append(distinct)
    order = _in_order(fragments, scenario_order)
    return {
        "instances": len([m for m in members.values() if len(m) >= 2]),
        "pair_recall": _ratio(same_both, same_instance),
        "pair_precision": _ratio(same_both, same_campaign),
        "campaigns_per_instance": {name: float(np.mean(fragments[name])) for name in order},
    }


@dataclass
class Evaluation:
    metrics: dict[str, object]                 # the metrics.json document
    ttd_s: dict[str, list[float]]              # scenario -> times to detect of detected entities
    detected: set[EntityKey]
    false_alarms: set[EntityKey]
    # scenario -> entities detected by an alert within the lead before their start (ttd 0)
    detected_before_start: dict[str, int] = field(default_factory=dict)
    # scenario -> victims before alert of each of its entities
    victims: dict[str, list[int]] = field(default_factory=dict)


Contacts = Mapping[EntityKey, list[tuple[int, str]]]   # entity -> (event time, recipient pseudonym)


def compute_metrics(truth: Iterable[TruthEntity], alerts: Iterable[AlertPoint],
                    max_scores: Mapping[EntityKey, float], *, normal_numbers: int, duration_days: float,
                    events: int, events_per_s: float, model_version: str, min_level: str = "high",
                    scenario_order: Iterable[str] = (), lead_ms: int = PRE_START_LEAD_MS,
                    contacts: Contacts | None = None, negatives: Iterable[NegativeEntity] = ()) -> dict[str, object]:
    """The ``metrics.json`` document (exactly its documented keys)."""
    return evaluate(truth, alerts, max_scores, normal_numbers=normal_numbers, duration_days=duration_days,
                    events=events, events_per_s=events_per_s, model_version=model_version, min_level=min_level,
                    scenario_order=scenario_order, lead_ms=lead_ms, contacts=contacts, negatives=negatives).metrics


def victims_before(contacts: list[tuple[int, str]], start_ms: int, alert_ms: int | None) -> int:
    """Distinct recipients contacted in [start, alert) (to the end when ``alert_ms`` is None)."""
    return len({peer for t, peer in contacts if t >= start_ms and (alert_ms is None or t < alert_ms)})


def hard_negatives(negatives: Iterable[NegativeEntity], alerts: Iterable[AlertPoint], min_level: str,
                   truth_keys: set[EntityKey]) -> dict[str, object]:
    """Per hard-negative class: entities, flagged (>= ``min_level``), flagged at any level, levels, reasons."""
    highest: dict[EntityKey, AlertPoint] = {}
    reasons: dict[EntityKey, set[str]] = {}
    for a in alerts:
        if a.key in truth_keys:
            continue
        best = highest.get(a.key)
        if best is None or LEVELS.index(a.level) > LEVELS.index(best.level):  # type: ignore[arg-type]
            highest[a.key] = a
        if level_at_least(a.level, min_level):
            reasons.setdefault(a.key, set()).update(a.reasons)
    classes: dict[str, dict[str, object]] = {}
    labelled: set[EntityKey] = set()
    members: dict[str, set[EntityKey]] = {}
    for neg in negatives:
        if neg.key in truth_keys:
            continue
        members.setdefault(neg.cls, set()).add(neg.key)
        labelled.add(neg.key)
    for cls in sorted(members):
        keys = members[cls]
        levels: dict[str, int] = {}
        codes: dict[str, int] = {}
        flagged = any_level = 0
        by_type: dict[str, int] = {}
        for key in keys:
            alert = highest.get(key)
            if alert is None:
                continue
            any_level += 1
            levels[alert.level] = levels.get(alert.level, 0) + 1
            if level_at_least(alert.level, min_level):
                flagged += 1
                by_type[key[0]] = by_type.get(key[0], 0) + 1
                for code in reasons.get(key, ()):
                    codes[code] = codes.get(code, 0) + 1
        classes[cls] = {
            "entities": len(keys),
            "flagged": flagged,
            "flagged_share": _ratio(flagged, len(keys)),
            "flagged_by_type": dict(sorted(by_type.items())),
            "flagged_any_level": any_level,
            "levels": {lvl: levels[lvl] for lvl in LEVELS if lvl in levels},
            "reasons": dict(sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    unlabelled = sum(1 for k, a in highest.items() if k not in labelled and level_at_least(a.level, min_level))
    return {"classes": classes, "unlabelled_false_alarms": unlabelled}


def evaluate(truth: Iterable[TruthEntity], alerts: Iterable[AlertPoint],
             max_scores: Mapping[EntityKey, float], *, normal_numbers: int, duration_days: float,
             events: int, events_per_s: float, model_version: str, min_level: str = "high",
             scenario_order: Iterable[str] = (), lead_ms: int = PRE_START_LEAD_MS,
             contacts: Contacts | None = None, negatives: Iterable[NegativeEntity] = ()) -> Evaluation:
    """Metrics plus the details the report plots."""
    truth = list(truth)
    alerts = list(alerts)
    contacts = contacts or {}
    # scenario -> entity -> earliest start
    starts: dict[str, dict[EntityKey, int]] = {}
    for t in truth:
        per = starts.setdefault(t.scenario, {})
        per[t.key] = min(per.get(t.key, t.start_ms), t.start_ms)
    truth_keys = {t.key for t in truth}

    qualifying: dict[EntityKey, list[int]] = {}
    campaign_at: dict[tuple[EntityKey, int], str | None] = {}
    for a in alerts:
        if level_at_least(a.level, min_level):
            qualifying.setdefault(a.key, []).append(a.raised_ms)
            campaign_at.setdefault((a.key, a.raised_ms), a.campaign_id)
    for times in qualifying.values():
        times.sort()
    false_alarms = {k for k in qualifying if k not in truth_keys}
    fa_by_type: dict[str, int] = {}
    for entity_type, _ in false_alarms:
        fa_by_type[entity_type] = fa_by_type.get(entity_type, 0) + 1

    order = _in_order(starts, scenario_order)
    scenarios: dict[str, dict[str, object]] = {}
    ttd_by_scenario: dict[str, list[float]] = {}
    early_by_scenario: dict[str, int] = {}
    detected_all: set[EntityKey] = set()
    # the campaign of each entity's counted alert (truth: its detecting one; false alarms: the first)
    campaign_of: dict[EntityKey, str | None] = {k: campaign_at[(k, ts[0])] for k, ts in qualifying.items()
                                               if k in false_alarms}
    victims_by_scenario: dict[str, list[int]] = {}
    for name in order:
        per = starts[name]
        ttds: list[float] = []
        victims: list[int] = []
        early = 0
        for key, start in per.items():
            first = next((t for t in qualifying.get(key, []) if t >= start - lead_ms), None)
            victims.append(victims_before(contacts.get(key, []), start, first))
            if first is not None:
                campaign_of[key] = campaign_at[(key, first)]
                ttds.append(max(0, first - start) / 1000.0)
                early += first < start
                detected_all.add(key)
        detected = len(ttds)
        ttd_by_scenario[name] = ttds
        victims_by_scenario[name] = victims
        types = {k[0] for k in per}
        fa = sum(fa_by_type.get(t, 0) for t in types)
        scenarios[name] = {
            "entities": len(per),
            "detected": detected,
            "recall": _ratio(detected, len(per)),
            "precision": _ratio(detected, detected + fa),
            "ttd_median_s": _percentile(ttds, 50),
            "ttd_p90_s": _percentile(ttds, 90),
            "victims_before_alert_median": _percentile([float(v) for v in victims], 50),
            "victims_before_alert_p90": _percentile([float(v) for v in victims], 90),
        }
        early_by_scenario[name] = early
    roc_auc, pr_auc = _aucs(truth_keys, max_scores)
    days = max(duration_days, 1 / 24)
    overall = {
        "precision": _ratio(len(detected_all), len(detected_all) + len(false_alarms)),
        "recall": _ratio(len(detected_all), len(truth_keys)),
        "false_alarms_per_100k_per_day": (_ratio(len(false_alarms), normal_numbers) * 100_000 / days
                                          if normal_numbers else 0.0),
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
    }
    metrics: dict[str, object] = {
        "events": int(events),
        "events_per_s": float(events_per_s) if math.isfinite(events_per_s) else 0.0,
        "model_version": model_version,
        "scenarios": scenarios,
        "overall": overall,
        "campaigns": campaign_grouping(truth, campaign_of, order),
        "hard_negatives": hard_negatives(negatives, alerts, min_level, truth_keys),
    }
    return Evaluation(metrics, ttd_by_scenario, detected_all, false_alarms, early_by_scenario, victims_by_scenario)
