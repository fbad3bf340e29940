"""Thresholds from the population against the false-alarm budget: rule cuts and model cuts.

The policy states a budget (``budget.alerts_per_100k_per_day``, default 1). Per entity class
(numbers, devices) a ``PopulationCuts`` turns it into the cuts the scorer applies, from what the
normal population of that class shows, on the points the models learn (scored, not flagged,
the deterministic 1-in-``learn_every`` sample; journalled and checkpointed with the models, so
a restore or a replay of the same events rebuilds the same cuts):

* **rules.** Each rule's *graded* condition (its first ``count``/``distinct``/``ratio``
  feature, e.g. ``new_recipients_24h`` of ``SLOW_LINK_SPREAD``) gets a sketch of
  ``r = value / policy threshold`` over the learned points where the rule's other conditions
  (its gates) hold, and 0 where they do not. The policy's threshold is the rule's minimum
  evidence (``r >= 1``); the derived cut is the ``r`` that the normal population exceeds at a
  share no larger than the budget allows, and the rule fires at ``policy threshold x cut``.
  A point the rule flags is never learned, so the sketch only sees the population *below*
  the current cut; the tail is read in the bands of ``r`` below 1, where nothing is cut away,
  and extrapolated to the budget's share (``rule_cut``: an exponential tail, the shape of
  counts' tails). The cut lies in ``[1, budget.max_scale]``.
* **models.** A calibrated detector's alert cut is ``budget_cut`` of its calibrator (the raw
  scores of the learned points): a raw score at or above it is rarer among normal entities
  than the budget allows, and the model alone raises an alert (``MODEL_RARE``, reasons naming
  the features that made the point rare, ``scoring.model_rare_reasons``).

The budget per scoring: an entity active all day is scored about ``86400 / rescore_after``
times (once per ``rescore_after`` of event time, more when its activity jumps), and every
scoring above a cut is counted as an alert of its own, so
``alpha = budget / 1e5 / scorings_per_day`` (``PercentileCalibrator.alpha_for_budget``): an
upper bound, as an entity raises one alert per episode however many of its scorings pass.

Warm-up: until ``warmup`` points are learned (the models' warm-up), and while a sketch holds
fewer than ``MIN_TAIL_COUNT`` points where its tail is read, the cut is the conservative one
of the policy: rules at their policy thresholds (scale 1), models without an alert cut (model
points stay capped at ``models.max_points``, below the alert level).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from models.calibration import PercentileCalibrator
from models.histogram import LogHistogram
from services.scorer import catalogue
from services.scorer.policy import Policy, Rule
from services.scorer.scoring import at_least

# the fewest learned points a fitted tail share may rest on
MIN_TAIL_COUNT = 20
# a model's tail is read no further out than this share (what it flags is not learned)
MIN_FIT_SHARE = 1e-3
# the bands of r = value / policy threshold a rule's tail is read in (below every cut: uncensored)
BANDS = (1.0 / 3.0, 2.0 / 3.0, 1.0)
# the fitted shares are one decade apart at most
FIT_DECADES = 1.0
# cuts are refreshed every this many learned points (a deterministic function of what was learned)
REFRESH_EVERY = 256
_GRADED = frozenset({"count", "distinct", "ratio"})


class _Calibrated(Protocol):
    calibrator: PercentileCalibrator

    @property
    def is_warm(self) -> bool: ...


def budget_cut(hist: LogHistogram, alpha: float, *, min_count: float = MIN_TAIL_COUNT) -> float | None:
    """A model's cut: the raw score a share ``alpha`` of ``hist``'s learned scores exceeds,
    extrapolated beyond what the counts resolve; None when the tail holds too few points to fit.

    Where ``alpha`` is resolvable (``min_count`` points above it, and at least ``MIN_FIT_SHARE``:
    the scores a model flags are not learned, so the far tail of its calibrator is thinned) this
    is the sketch's own cut. Beyond, an exponential tail ``share(x) = s_lo exp(-(x - x_lo) rate)``
    is fitted through the shares ``s_hi = min(share above 0, 10 s_lo)`` and ``s_lo`` and solved
    for ``alpha``. A tail that does not fall between the two (a spike) gives no fit.
    """
    total = hist.total
    if total <= 0.0 or not 0.0 < alpha < 1.0:
        return None
    s_lo = max(min_count / total, MIN_FIT_SHARE)
    if alpha >= s_lo:
        return hist.value_at_tail(alpha)
    positive = hist.tail(hist.min_value)            # the share of learned values above zero
    s_hi = min(positive, s_lo * 10.0 ** FIT_DECADES)
    if s_hi <= s_lo * 1.5:
        return None
    x_hi, x_lo = hist.value_at_tail(s_hi), hist.value_at_tail(s_lo)
    if not x_lo > x_hi > 0.0:
        return None
    rate = math.log(s_hi / s_lo) / (x_lo - x_hi)
    return x_lo + math.log(s_lo / alpha) / rate


def rule_cut(hist: LogHistogram, alpha: float, *, min_count: float = MIN_TAIL_COUNT) -> float | None:
    """A rule's cut in units of its policy threshold (``r = value / threshold``): the ``r`` that
    a share ``alpha`` of the learned points exceeds; None when the population gives no fit.

    A point the rule flags is not learned, so the sketch holds the population only below the
    rule's current cut (which is never below 1). The tail is therefore read where nothing is
    cut away: the learned shares in the two bands ``[1/3, 2/3)`` and ``[2/3, 1)`` of ``r``. An
    exponential tail ``share(r >= x) = A exp(-rate x)`` through them gives ``rate`` (their ratio)
    and ``A``, and the cut is where it falls to ``alpha``. No fit when the upper band holds fewer
    than ``min_count`` points (nobody normal comes near the threshold: the policy's cut is within
    budget) or the bands do not fall (no tail to extrapolate: the policy's cut is kept).
    """
    total = hist.total
    if total <= 0.0 or not 0.0 < alpha < 1.0:
        return None
    low, mid, high = BANDS
    upper = hist.tail(mid) - hist.tail(high)
    lower = hist.tail(low) - hist.tail(mid)
    if upper * total < min_count or not lower > upper:
        return None
    rate = math.log(lower / upper) / (mid - low)
    scale = upper / (math.exp(-rate * mid) - math.exp(-rate * high))     # the A of share(r >= x)
    return math.log(scale / alpha) / rate if scale > alpha else high


def alpha_per_scoring(policy: Policy) -> float:
    """The budget as a tail share per scoring (see the module docstring)."""
    scorings_per_day = 86_400_000 / max(policy.rescore_after_ms, 1)
    return PercentileCalibrator.alpha_for_budget(policy.spec.budget.alerts_per_100k_per_day,
                                                 per_entity_per_day=scorings_per_day)


class _RuleSketch:
    """The sketch of one rule: its graded condition, its gates and the learned ``r``."""

    __slots__ = ("code", "feature", "gates", "hist", "scale", "threshold")

    def __init__(self, code: str, feature: str, threshold: float, gates: tuple[tuple[str, float], ...]) -> None:
        self.code = code
        self.feature = feature
        self.threshold = threshold
        self.gates = gates
        # 5 % resolution from 1 % of the policy threshold to ~70x it
        self.hist = LogHistogram(min_value=1e-2, gamma=1.05, n_buckets=180, decay=0.5,
                                 decay_every=2_000_000, refresh_every=REFRESH_EVERY)
        self.scale = 1.0

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


def _sketch(entity_type: str, rule: Rule) -> _RuleSketch | None:
    kinds = {f.name: f.kind for f in catalogue.FEATURES[entity_type]}  # type: ignore[index]
    graded = next(((name, t) for name, t in rule.when.items() if kinds.get(name) in _GRADED and t > 0), None)
    if graded is None:
        return None
    gates = tuple((name, float(t)) for name, t in rule.when.items() if name != graded[0])
    return _RuleSketch(rule.code, graded[0], float(graded[1]), gates)


class PopulationCuts:
    """The derived cuts of one entity class: a scale per rule, an alert cut per model."""

    def __init__(self, entity_type: str, rules: Sequence[Rule], *, alpha: float, warmup: int,
                 max_scale: float) -> None:
        self.entity_type = entity_type
        self.alpha = alpha
        self.warmup = warmup
        self.max_scale = max_scale
        self.n_learned = 0
        self.rules: list[_RuleSketch | None] = [_sketch(entity_type, rule) for rule in rules]
        self.model_cuts: dict[str, float] = {}     # detector -> raw alert cut (absent: none yet)

    @classmethod
    def for_policy(cls, policy: Policy, entity_type: str) -> PopulationCuts:
        rules = policy.rules.get(entity_type, [])  # type: ignore[call-overload]
        budget = policy.spec.budget
        return cls(entity_type, rules, alpha=alpha_per_scoring(policy),
                   warmup=policy.models.warmup if budget.warmup is None else budget.warmup,
                   max_scale=budget.max_scale)

    @property
    def is_warm(self) -> bool:
        return self.n_learned >= self.warmup

    def learn_one(self, features: Mapping[str, float], detectors: Mapping[str, Any] | None = None) -> None:
        """Learn one point of the normal population (what the models learn, after them)."""
        self.n_learned += 1
        for sketch in self.rules:
            if sketch is None:
                continue
            r = 0.0
            if all(features.get(name, 0.0) >= at_least(t) for name, t in sketch.gates):
                value = features.get(sketch.feature, 0.0)
                r = 0.0 if math.isnan(value) else value / sketch.threshold   # NaN: not above anything
            sketch.hist.update(r)
        if self.n_learned % REFRESH_EVERY == 0:
            self.refresh(detectors or {})

    def refresh(self, detectors: Mapping[str, _Calibrated]) -> None:
        """Recompute every cut from the sketches (done every ``REFRESH_EVERY`` learned points)."""
        warm = self.is_warm
        for sketch in self.rules:
            if sketch is None:
                continue
            cut = rule_cut(sketch.hist, self.alpha) if warm else None
            sketch.scale = 1.0 if cut is None else min(self.max_scale, max(1.0, cut))
        self.model_cuts = {}
        for name, detector in detectors.items():
            if warm and detector.is_warm:
                cut = budget_cut(detector.calibrator.histogram, self.alpha)
                if cut is not None:
                    self.model_cuts[name] = cut

    def scale(self, index: int) -> float:
        """The factor on rule ``index``'s graded threshold (1.0: the policy's own)."""
        sketch = self.rules[index] if index < len(self.rules) else None
        return 1.0 if sketch is None else sketch.scale

    def graded(self, index: int) -> tuple[str, float] | None:
        """Rule ``index``'s graded feature and policy threshold (None: the rule has none)."""
        sketch = self.rules[index] if index < len(self.rules) else None
        return None if sketch is None else (sketch.feature, sketch.threshold)

    def thresholds(self) -> dict[str, tuple[float, float]]:
        """Per rule code with a graded condition: (policy threshold, derived threshold)."""
        return {s.code: (s.threshold, s.threshold * s.scale) for s in self.rules if s is not None}


__all__ = ["MIN_TAIL_COUNT", "PopulationCuts", "alpha_per_scoring", "budget_cut", "rule_cut"]
