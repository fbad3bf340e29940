"""Streaming ECOD: outlier score from per-feature empirical tails of a decayed population.

ECOD (Li et al., "ECOD: Unsupervised Outlier Detection Using Empirical Cumulative
Distribution Functions", TKDE 2022) scores a point by how far into the tails of each feature's
empirical distribution it sits: ``sum_f -log P(X_f >= x_f)``. This streaming variant keeps one
``LogHistogram`` per feature and only looks at the right tail, because every fraud feature here
is built so that "more" is "more suspicious" (counts, shares, recencies).

Why it is here next to Half-Space Trees: HST compares a point with the mass of the previous
``window_size`` points, so a burst of similar anomalies (an SMS blast: thousands of near-equal
vectors) fills its reference window and masks itself. ECOD's reference is the whole recent
population (millions of updates before any forgetting), so a burst moves it by a negligible
amount, and every per-feature tail doubles as an explanation ("p99.9 of recipients in 1h").

Missing features count as "not in the tail"; a new feature gets its own histogram on first
learn. Deterministic (no randomness), so ``seed`` is accepted only for a uniform interface.
"""

from __future__ import annotations

import math

from models.histogram import LogHistogram


class StreamingECOD:
    """Right-tail empirical-CDF outlier detector over a dict of non-negative features.

    Parameters
    ----------
    decay_every
        Updates between halvings of every feature histogram (forgetting horizon).
    min_tail
        Floor on a feature's tail probability, so one feature cannot dominate unboundedly.
    seed
        Unused (the detector is deterministic); kept for a uniform constructor.

    Examples
    --------
    >>> model = StreamingECOD()
    >>> for i in range(2000):
    ...     model.learn_one({"sms_out_1h": float(i % 5), "url_share": 0.0})
    >>> model.score_one({"sms_out_1h": 2.0, "url_share": 0.0}) < 2.0
    True
    >>> model.score_one({"sms_out_1h": 400.0, "url_share": 1.0}) > 10.0
    True
    """

    def __init__(self, decay_every: int = 2_000_000, min_tail: float = 1e-7, seed: int | None = None) -> None:
        self.decay_every = decay_every
        self.min_tail = min_tail
        self.seed = seed
        self.histograms: dict[str, LogHistogram] = {}
        self.n_learned = 0

    def _histogram(self, feature: str) -> LogHistogram:
        hist = self.histograms.get(feature)
        if hist is None:
            hist = LogHistogram(min_value=1e-3, gamma=1.05, n_buckets=512,
                                decay=0.5, decay_every=self.decay_every, refresh_every=256)
            self.histograms[feature] = hist
        return hist

    def learn_one(self, x: dict[str, float]) -> None:
        for feature, value in x.items():
            self._histogram(feature).update(value)
        # a feature absent from x is a zero observation for its histogram (it did not happen)
        if len(x) < len(self.histograms):
            for feature, hist in self.histograms.items():
                if feature not in x:
                    hist.update(0.0)
        self.n_learned += 1

    def tails_one(self, x: dict[str, float]) -> dict[str, float]:
        """P(X_f >= x_f) per known feature of ``x`` (unknown features are skipped)."""
        histograms = self.histograms
        min_tail = self.min_tail
        tails: dict[str, float] = {}
        for feature, value in x.items():
            hist = histograms.get(feature)
            if hist is None or value <= 0.0:
                continue
            tail = hist.tail(value)
            tails[feature] = tail if tail > min_tail else min_tail
        return tails

    def score_one(self, x: dict[str, float]) -> float:
        """Sum of ``-ln tail`` over the features of ``x`` (0 for an entirely typical point)."""
        return float(sum(-math.log(t) for t in self.tails_one(x).values()))
