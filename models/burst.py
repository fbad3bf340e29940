"""Burst-aware detector: Poisson surprise of an entity's recent rates against its own past.

Every per-entity activity counter is kept for 5 min, 1 h and 24 h (decayed counts, see
``services.scorer.features``). ``PoissonBurst`` asks, per *channel* (SMS sent, never-contacted
recipients, unanswered calls, new IMSIs on a device, ...): how surprising is the count of the
last 5 minutes and of the last hour, given the rate this entity showed before that hour?

The expected hourly rate is a Gamma-Poisson (empirical Bayes) blend of the entity's own
history and the population's typical rate, learned online::

    history  = max(0, count_24h - count_1h)        # what the entity did before the last hour
    exposure = clip(observed_h - 1, 0, 23)          # hours of that history we actually saw
    rate     = (history + prior_h * pop_rate) / (exposure + prior_h)

and the surprise of an observed count ``k`` against an expectation ``λ`` is the Poisson
large-deviation exponent ``k ln(k/λ) - k + λ`` (Chernoff; ≈ ``-ln P(X >= k)``, 0 when ``k <= λ``),
taken for ``k = count_5m, λ = rate/12`` and ``k = count_1h, λ = rate``. The raw score is the sum
of the channels' larger surprise, so independent evidence adds up.

Why this catches what Half-Space Trees miss: HST compares a *point* with the mass of the
previous ``window_size`` points, so a burst of similar points (an SMS blast is thousands of
near-equal vectors from one farm) fills its reference window and masks itself, and a steady
heavy sender (a call centre) looks as rare as a farm. Here each entity is compared with its
*own* past rate: the call centre's 400 calls an hour are its normal, the fresh SIM's 60 link
SMS in its first hour are not. The population only supplies the prior for entities without
history, so a burst of anomalies moves it little (``learn_one`` is an exponential average over
``horizon`` learned points, and the scorer never learns from flagged traffic).

Deterministic; pickles; missing channels count as zero activity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# (channel, 5-minute feature or None, 1-hour feature, 24-hour feature)
Channel = tuple[str, str | None, str, str]


class PoissonBurst:
    """Per-entity Poisson burst surprise over rate channels, River's ``learn_one``/``score_one``.

    Parameters
    ----------
    channels
        ``(name, feature_5m | None, feature_1h, feature_24h)`` per activity channel.
    prior_h
        Weight of the population rate, in hours of the entity's own history.
    horizon
        Learned points over which the population rates are averaged (exponential average).
    min_rate
        Floor of any expected hourly rate (nothing is ever "impossible").
    observed_feature
        Feature holding how many hours the entity has been observed (default: 24 h if absent).

    Examples
    --------
    >>> model = PoissonBurst([("sms", "sms_5m", "sms_1h", "sms_24h")])
    >>> for _ in range(500):
    ...     model.learn_one({"sms_5m": 0.1, "sms_1h": 1.0, "sms_24h": 24.0, "observed_h": 24.0})
    >>> steady = {"sms_5m": 0.1, "sms_1h": 1.0, "sms_24h": 24.0, "observed_h": 24.0}
    >>> burst = {"sms_5m": 30.0, "sms_1h": 30.0, "sms_24h": 53.0, "observed_h": 24.0}
    >>> model.score_one(steady) < 0.5 < 50.0 < model.score_one(burst)
    True
    >>> heavy_but_steady = {"sms_5m": 33.0, "sms_1h": 400.0, "sms_24h": 9600.0, "observed_h": 24.0}
    >>> model.score_one(heavy_but_steady) < 5.0
    True
    """

    def __init__(self, channels: Sequence[Channel], *, prior_h: float = 3.0, horizon: int = 20_000,
                 min_rate: float = 0.02, observed_feature: str = "observed_h", seed: int | None = None) -> None:
        self.channels: list[Channel] = list(channels)
        self.prior_h = prior_h
        self.horizon = horizon
        self.min_rate = min_rate
        self.observed_feature = observed_feature
        self.seed = seed
        # population hourly rate per channel (exponential average of learned entities' 24 h rates)
        self.pop_rate: dict[str, float] = {c[0]: min_rate for c in self.channels}
        self.n_learned = 0

    def learn_one(self, x: dict[str, float]) -> None:
        self.n_learned += 1
        alpha = 1.0 / min(self.n_learned, self.horizon)
        observed = min(24.0, max(1.0, x.get(self.observed_feature, 24.0)))
        pop = self.pop_rate
        for name, _, _, day in self.channels:
            rate = x.get(day, 0.0) / observed
            pop[name] += alpha * (rate - pop[name])

    def surprises(self, x: dict[str, float]) -> dict[str, float]:
        """Per channel, the larger of the 5-minute and 1-hour surprise (only channels above 0)."""
        observed = x.get(self.observed_feature, 24.0)
        exposure = observed - 1.0
        exposure = 0.0 if exposure < 0.0 else (23.0 if exposure > 23.0 else exposure)
        prior_h = self.prior_h
        min_rate = self.min_rate
        pop = self.pop_rate
        out: dict[str, float] = {}
        for name, five, hour, day in self.channels:
            k1 = x.get(hour, 0.0)
            k5 = x.get(five, 0.0) if five is not None else 0.0
            if k1 <= 0.0 and k5 <= 0.0:
                continue
            history = x.get(day, 0.0) - k1
            history = max(history, 0.0)
            rate = (history + prior_h * pop.get(name, min_rate)) / (exposure + prior_h)
            rate = max(rate, min_rate)
            best = _surprise(k1, rate)
            if k5 > 0.0:
                s5 = _surprise(k5, rate / 12.0)
                best = max(best, s5)
            if best > 0.0:
                out[name] = best
        return out

    def score_one(self, x: dict[str, float]) -> float:
        """Sum over channels of the Poisson surprise (nats); 0 for activity at the expected rate."""
        return float(sum(self.surprises(x).values()))


def _surprise(k: float, lam: float) -> float:
    """Poisson large-deviation exponent of seeing ``k`` when ``lam`` is expected (0 if k <= lam)."""
    if k <= lam:
        return 0.0
    return k * math.log(k / lam) - k + lam


class BurstAwareHST:
    """Half-Space Trees over the features *plus* each channel's Poisson burst surprise.

    HST alone sees where a point sits in feature space; the added ``burst_<channel>`` features
    say how far the entity moved from its *own* earlier rate, which a population model cannot
    know. A farm SIM's first hour and a call centre's steady day can share a feature vector;
    their burst features differ.

    Examples
    --------
    >>> model = BurstAwareHST([("sms", "sms_5m", "sms_1h", "sms_24h")], window_size=50, seed=1)
    >>> for i in range(300):
    ...     model.learn_one({"sms_5m": 0.1, "sms_1h": 1.0 + i % 3, "sms_24h": 24.0, "observed_h": 24.0})
    >>> calm = {"sms_5m": 0.1, "sms_1h": 2.0, "sms_24h": 24.0, "observed_h": 24.0}
    >>> burst = {"sms_5m": 40.0, "sms_1h": 40.0, "sms_24h": 63.0, "observed_h": 24.0}
    >>> model.score_one(calm) < model.score_one(burst)
    True
    """

    def __init__(self, channels: Sequence[Channel], *, n_trees: int = 10, height: int = 8, window_size: int = 1000,
                 seed: int | None = 0) -> None:
        from models.hst import ScaledHalfSpaceTrees

        self.burst = PoissonBurst(channels)
        self.trees = ScaledHalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)

    def _augment(self, x: dict[str, float]) -> dict[str, float]:
        out = dict(x)
        surprises = self.burst.surprises(x)
        for name, _, _, _ in self.burst.channels:
            out["burst_" + name] = surprises.get(name, 0.0)
        return out

    def learn_one(self, x: dict[str, float]) -> None:
        augmented = self._augment(x)      # surprise against the rates learned so far, then learn
        self.burst.learn_one(x)
        self.trees.learn_one(augmented)

    def score_one(self, x: dict[str, float]) -> float:
        return self.trees.score_one(self._augment(x))
