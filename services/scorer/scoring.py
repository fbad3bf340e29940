"""From features to points: policy rules, calibrated model tails and partner feedback.

Every contribution is "points" in [0, 100] with a ``Reason``; contributions are fused by a
noisy-OR (``100 * (1 - prod(1 - p/100))``), so two independent medium signals make a high one
and no single weak signal can. Model points come from calibrated tails (percentiles), so they
mean the same for every detector; they are capped (``models.max_points``) so that, by default,
an alert needs a rule and a model to agree, or one strong rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from models import PoissonBurst, rarity_label
from services.common.records import Reason
from services.scorer.policy import Policy, Rule

# the window a feature name refers to, for reasons
_WINDOW_SUFFIX = (("_5m", "5m"), ("_1h", "1h"), ("_24h", "24h"), ("_since_change", "change"),
                  ("takeover_evidence", "change"))


def window_of(feature: str) -> str:
    for suffix, window in _WINDOW_SUFFIX:
        if feature.endswith(suffix):
            return window
    return "lifetime"


def fuse(points: Iterable[float]) -> float:
    """Noisy-OR of points in [0, 100]."""
    keep = 1.0
    for p in points:
        if p > 0.0:
            keep *= 1.0 - min(p, 100.0) / 100.0
    return 100.0 * (1.0 - keep)


# Decayed counts are products of exponentials (features.py: forward decay), so one event "now"
# can come out as 0.9999999999999999 (for many single events, docs/scorer.md "Measured"): a condition
# ``count >= 1`` would miss it. And the counters are stored as float32 between views (relative
# error up to 2**-24 = 6e-8 per store): one link SMS out of two, a URL share of exactly 1/4,
# read 5.2e-9 short of 0.25 at every event time tried. Conditions hold within this relative
# slack; real decay is still larger (an event 1 ms old in the 5 min window has decayed by 3.3e-6).
ROUNDING_SLACK = 1e-6


def at_least(threshold: float) -> float:
    """The value a feature must reach for ``feature >= threshold`` to hold, rounding forgiven."""
    return threshold - ROUNDING_SLACK * max(1.0, abs(threshold))


def rule_points(rule: Rule, features: dict[str, float]) -> float:
    """0 unless every condition holds; then ``points`` growing to ``max_points`` at ``saturate`` x."""
    for feature, threshold in rule.when.items():
        if features.get(feature, 0.0) < at_least(threshold):
            return 0.0
    return _held_points(rule, features)


def _held_points(rule: Rule, features: dict[str, float]) -> float:
    """The points of a rule whose conditions hold (checked by the caller)."""
    if rule.max_points <= rule.points:
        return rule.points
    feature, threshold = next(iter(rule.when.items()))
    ratio = features[feature] / threshold if threshold > 0 else 1.0
    growth = min(1.0, math.log(max(ratio, 1.0)) / math.log(rule.saturate))
    return rule.points + (rule.max_points - rule.points) * growth


def _fmt(value: float) -> str:
    if value >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}"


def compile_matcher(rules: list[Rule]) -> Callable[[dict[str, float]], list[int]]:
    """One generated function testing every rule's conditions: indices of the rules that hold.

    Runs for every active entity's view, so it is a flat chain of comparisons instead of a loop
    over rules and conditions. Feature names go in as ``repr`` string literals and thresholds as
    ``float`` literals (``at_least``: rounding forgiven), so nothing from the policy file is ever
    executed as code.
    """
    lines = ["def match(f):", "    get = f.get", "    out = []"]
    for index, rule in enumerate(rules):
        tests = " and ".join(f"get({name!r}, 0.0) >= {at_least(float(threshold))!r}"
                             for name, threshold in rule.when.items())
        lines.append(f"    if {tests}:")
        lines.append(f"        out.append({index})")
    lines.append("    return out")
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), {"__builtins__": {}}, namespace)  # noqa: S102 - generated from literals only
    match: Callable[[dict[str, float]], list[int]] = namespace["match"]
    return match


def evaluate_rules(rules: list[Rule], features: dict[str, float],
                   tails: dict[str, float] | None,
                   matched: list[int] | None = None) -> list[tuple[float, Reason]]:
    """Fired rules as (points, reason); rarity from the population tail when a model is warm.

    ``matched``: indices from ``compile_matcher`` when the caller already has them (their
    conditions are then not tested a second time).
    """
    fired: list[tuple[float, Reason]] = []
    groups: list[str | None] = []
    for rule in (rules if matched is None else [rules[i] for i in matched]):
        points = rule_points(rule, features) if matched is None else _held_points(rule, features)
        if points <= 0.0:
            continue
        feature = rule.feature
        value = features[feature]
        window = window_of(feature)
        tail = tails.get(feature) if tails else None
        rarity = rarity_label(tail) if tail is not None else "rule"
        where = {"lifetime": "", "change": " since the SIM/device change"}.get(window, f" in {window}")
        fired.append((points, Reason(
            code=rule.code, feature=feature, value=round(value, 3), window=window, rarity=rarity,
            text=f"{rule.code}: {_fmt(value)} {rule.label}{where}, {rarity}",
        )))
        groups.append(rule.evidence)
    return _once_per_evidence(fired, groups)


def _once_per_evidence(fired: list[tuple[float, Reason]], groups: list[str | None]) -> list[tuple[float, Reason]]:
    """Rules of one evidence group count once: all but the group's largest points keep their
    reason (it explains the verdict) at 0 points."""
    best: dict[str, int] = {}
    for i, group in enumerate(groups):
        if group is not None and (group not in best or fired[i][0] > fired[best[group]][0]):
            best[group] = i
    return [(points if group is None or best[group] == i else 0.0, reason)
            for i, ((points, reason), group) in enumerate(zip(fired, groups, strict=True))]


def model_in_evidence(contributions: list[tuple[float, Reason]], rule_groups: dict[str, str | None],
                      model_group: str, capped_max: float) -> list[tuple[float, Reason]]:
    """The contributions with a model's capped points (``MODEL_ANOMALY`` up to ``capped_max``,
    ``models.max_points``) counted in the evidence group ``model_group`` (``models.evidence``):
    when a rule of that group fired, only the larger of the two fuses; the other keeps its reason
    at 0 points. A model reads the counters the group's rules read (never-contacted recipients,
    SMS, links), so its tail on a run of SMS is the run again, not a second signal. A model past
    its budget cut is not grouped: ``MODEL_RARE``, nor the ``MODEL_ANOMALY`` that carries its
    points on the views between two scorings (above ``capped_max``)."""
    groups = [model_group if reason.code == "MODEL_ANOMALY" and points <= capped_max
              else rule_groups.get(reason.code) for points, reason in contributions]
    return _once_per_evidence(contributions, groups)


def model_points(policy: Policy, tail: float) -> float:
    """Points of a calibrated tail probability (0 for common, growing per decade of rarity)."""
    cfg = policy.models
    if tail > cfg.tail_start:
        return 0.0
    decades = math.log10(cfg.tail_start / max(tail, 1e-12))
    return min(cfg.max_points, cfg.points_at_start + cfg.points_per_decade * decades)


def model_reason(detector: str, tail: float, feature_tails: dict[str, float],
                 features: dict[str, float]) -> Reason:
    """Name the most unusual feature behind a model's verdict."""
    if feature_tails:
        feature = min(feature_tails, key=feature_tails.__getitem__)
    else:
        feature = max(features, key=features.__getitem__) if features else "none"
    value = features.get(feature, 0.0)
    window = window_of(feature)
    rarity = rarity_label(tail)
    return Reason(code="MODEL_ANOMALY", feature=feature, value=round(value, 3), window=window,
                  rarity=f"model {rarity}",
                  text=f"MODEL_ANOMALY ({detector}): unusual traffic, most of all {feature}={_fmt(value)}, "
                       f"model {rarity}")


def model_rare_reasons(detector: str, raw: float, cut: float, tail: float, *, contributions: dict[str, float],
                       features: dict[str, float], top: int = 3) -> list[Reason]:
    """The reasons of a model-only alert (``MODEL_RARE``): one per feature that made the point
    rare, largest contribution first (HST: the mass its splits cut away; ECOD: its ``-ln tail``),
    each with the feature's name and value, so a bank reads *what* was unusual, not only that a
    model said so. Without contributions (a detector that has none) the one reason names the model."""
    rarity = rarity_label(tail)
    named = sorted(contributions.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    if not named:
        return [Reason(code="MODEL_RARE", feature="model", value=round(raw, 4), window="lifetime",
                       rarity=f"model {rarity}",
                       text=f"MODEL_RARE ({detector}): rarer among normal traffic than the false-alarm budget "
                            f"allows (score {raw:.3g} >= cut {cut:.3g}), model {rarity}")]
    total = sum(c for _, c in contributions.items()) or 1.0
    reasons = []
    for rank, (feature, contribution) in enumerate(named):
        value = features.get(feature, 0.0)
        share = contribution / total
        lead = (f"MODEL_RARE ({detector}): rarer among normal traffic than the false-alarm budget allows "
                f"(score {raw:.3g} >= cut {cut:.3g}, model {rarity}); " if rank == 0 else "MODEL_RARE: ")
        reasons.append(Reason(
            code="MODEL_RARE", feature=feature, value=round(value, 3), window=window_of(feature),
            rarity=f"model {rarity}",
            text=f"{lead}{feature}={_fmt(value)} made it rare ({share:.0%} of the model's evidence)"))
    return reasons


def burst_reason(model: PoissonBurst, tail: float, features: dict[str, float]) -> Reason:
    """Name the channel whose recent rate is the most surprising for this entity."""
    surprises = model.surprises(features)
    rarity = rarity_label(tail)
    if not surprises:
        return Reason(code="MODEL_ANOMALY", feature="burst", value=0.0, window="1h", rarity=f"model {rarity}",
                      text=f"MODEL_ANOMALY (burst): unusual rates, model {rarity}")
    channel = max(surprises, key=surprises.__getitem__)
    spec = next(c for c in model.channels if c[0] == channel)
    five, hour = spec[1], spec[2]
    feature = five if five is not None and features.get(five, 0.0) * 12.0 > features.get(hour, 0.0) else hour
    value = features.get(feature, 0.0)
    window = window_of(feature)
    return Reason(code="MODEL_ANOMALY", feature=feature, value=round(value, 3), window=window,
                  rarity=f"model {rarity}",
                  text=f"MODEL_ANOMALY (burst): {channel} jumped to {_fmt(value)} in {window}, far above this "
                       f"entity's own earlier rate, model {rarity}")
