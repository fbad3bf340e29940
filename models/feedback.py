"""The supervised side: partner feedback (confirmed fraud / false positive) → P(fraud | features).

An online logistic regression on the same feature dicts the anomaly detectors see, trained only
by labels, so it starts silent: until it has seen ``min_each`` labels of both classes
``proba_one`` answers ``None`` and the fusion in the scorer ignores it.

What it does with a feature value, so that it holds on real tables (heavy tails, signed values,
empty fields):

- signed log: ``sign(v) * log1p(|v|)`` (a count of 5 000 is not 1 000 times a count of 5; a
  balance change of -300 stays negative);
- standardised by a running mean and variance of the labelled values (Welford), clipped to
  ±``clip`` standard deviations so one extreme row cannot swing the weights;
- missing (key absent or NaN): the standardised value is 0 (the mean) and a per-feature missing
  indicator is 1 — an empty field is its own evidence, neither 0 nor average;
- AdaGrad steps (a per-weight learning rate that shrinks with that weight's squared gradients:
  features seen rarely still learn, frequent ones settle) with L2 shrinkage.

``format`` is 2. A learner pickled before (format 1: River's ``StandardScaler`` →
``LogisticRegression`` on ``log1p`` of the clipped values) loads and goes on as it was, so
labels already learned are not lost; a fresh learner gets this format.
"""

from __future__ import annotations

import math
from typing import Any

FORMAT = 2


def signed_log1p(value: float) -> float:
    """``sign(v) * log1p(|v|)``."""
    return math.log1p(value) if value > 0.0 else (-math.log1p(-value) if value < 0.0 else 0.0)


class FeedbackLearner:
    """Online P(fraud) from labelled feature dicts.

    Parameters
    ----------
    min_each
        Labels of each class before ``proba_one`` answers.
    learning_rate
        AdaGrad's base step.
    seed
        Unused (the learner is deterministic); kept for a uniform constructor.
    l2
        L2 shrinkage per step.
    clip
        Standardised values are clipped to ±``clip``.

    Examples
    --------
    >>> learner = FeedbackLearner(min_each=2, seed=0)
    >>> for _ in range(20):
    ...     learner.learn_one({"sms_out_1h": 300.0, "url_share_1h": 1.0}, True)
    ...     learner.learn_one({"sms_out_1h": 3.0, "url_share_1h": 0.0}, False)
    >>> learner.proba_one({"sms_out_1h": 250.0, "url_share_1h": 1.0}) > 0.5
    True
    >>> learner.proba_one({"sms_out_1h": float("nan"), "url_share_1h": 1.0}) is not None
    True
    """

    def __init__(self, min_each: int = 5, learning_rate: float = 0.1, seed: int | None = 0, *,
                 l2: float = 1e-4, clip: float = 6.0) -> None:
        self.format = FORMAT
        self.min_each = min_each
        self.learning_rate = learning_rate
        self.seed = seed
        self.l2 = l2
        self.clip = clip
        # per feature: [count, mean, M2] of its signed-log values (Welford)
        self.stats: dict[str, list[float]] = {}
        self.weights: dict[str, float] = {}          # on the standardised value
        self.missing_weights: dict[str, float] = {}  # on the missing indicator
        self.bias = 0.0
        # AdaGrad's sums of squared gradients, per weight ("" for the bias)
        self.g2: dict[str, float] = {"": 0.0}
        self.g2_missing: dict[str, float] = {}
        self.n_positive = 0
        self.n_negative = 0
        self.legacy: Any = None                      # a format-1 River pipeline, when loaded from one

    @property
    def ready(self) -> bool:
        return self.n_positive >= self.min_each and self.n_negative >= self.min_each

    def _inputs(self, x: dict[str, float]) -> tuple[dict[str, float], list[str]]:
        """Standardised values of the known, present features, and the known missing ones."""
        values: dict[str, float] = {}
        missing: list[str] = []
        clip = self.clip
        for name, (n, mean, m2) in self.stats.items():
            v = x.get(name)
            if v is None or math.isnan(v):
                missing.append(name)
                continue
            sd = math.sqrt(m2 / n) if n > 1.0 else 0.0
            z = (signed_log1p(v) - mean) / sd if sd > 0.0 else 0.0
            values[name] = clip if z > clip else (-clip if z < -clip else z)
        return values, missing

    def _logit(self, values: dict[str, float], missing: list[str]) -> float:
        w, u = self.weights, self.missing_weights
        return self.bias + sum(w.get(k, 0.0) * z for k, z in values.items()) + sum(u.get(k, 0.0) for k in missing)

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        if y:
            self.n_positive += 1
        else:
            self.n_negative += 1
        if self.legacy is not None:
            self.legacy.learn_one(_legacy_log(x), y)
            return
        for name, v in x.items():                   # the scaler first (as River's pipeline does)
            if math.isnan(v):
                continue
            s = self.stats.get(name)
            if s is None:
                s = self.stats[name] = [0.0, 0.0, 0.0]
            z = signed_log1p(v)
            s[0] += 1.0
            delta = z - s[1]
            s[1] += delta / s[0]
            s[2] += delta * (z - s[1])
        values, missing = self._inputs(x)
        g = _sigmoid(self._logit(values, missing)) - (1.0 if y else 0.0)
        rate, l2 = self.learning_rate, self.l2
        g2 = self.g2
        g2[""] += g * g
        self.bias -= rate * g / math.sqrt(g2[""] + 1e-12)
        w = self.weights
        for name, z in values.items():
            grad = g * z
            acc = g2.get(name, 0.0) + grad * grad
            g2[name] = acc
            old = w.get(name, 0.0)
            w[name] = old - rate * (grad / math.sqrt(acc + 1e-12) + l2 * old)
        u, g2m = self.missing_weights, self.g2_missing
        for name in missing:
            acc = g2m.get(name, 0.0) + g * g
            g2m[name] = acc
            old = u.get(name, 0.0)
            u[name] = old - rate * (g / math.sqrt(acc + 1e-12) + l2 * old)

    def proba_one(self, x: dict[str, float]) -> float | None:
        """P(confirmed fraud), or ``None`` until both classes have ``min_each`` labels."""
        if not self.ready:
            return None
        if self.legacy is not None:
            return float(self.legacy.predict_proba_one(_legacy_log(x)).get(True, 0.0))
        return _sigmoid(self._logit(*self._inputs(x)))

    def score_one(self, x: dict[str, float]) -> float:
        """River-style score: P(fraud), 0.5 when not ready."""
        proba = self.proba_one(x)
        return 0.5 if proba is None else proba

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "format" not in state:                   # format 1: a River pipeline in "model"
            fresh = FeedbackLearner(min_each=state.get("min_each", 5), seed=state.get("seed", 0))
            self.__dict__.update(fresh.__dict__)
            self.legacy = state["model"]
            self.n_positive, self.n_negative = state.get("n_positive", 0), state.get("n_negative", 0)
            return
        self.__dict__.update(state)


def _sigmoid(t: float) -> float:
    if t >= 0.0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def _legacy_log(x: dict[str, float]) -> dict[str, float]:
    """Format 1's input transform (``log1p`` of the value, 0 for anything not positive)."""
    return {k: math.log1p(v) if v > 0.0 else 0.0 for k, v in x.items()}
