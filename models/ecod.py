"""Streaming ECOD: outlier score from per-feature empirical tails of a decayed population.

ECOD (Li et al., "ECOD: Unsupervised Outlier Detection Using Empirical Cumulative
Distribution Functions", TKDE 2022) scores a point by how far into the tails of each feature's
empirical distribution it sits. As published, it sums ``-log`` tail probabilities three ways —
all left tails (``O_left``), all right tails (``O_right``), and per feature the tail on the side
of that feature's skewness (``O_auto``: left when the feature is skewed left, else right) — and
the score is the largest of the three. So a point far *below* the population on many features
is as rare as one far above (per-subscriber tables where fraud shows less usage than everyone
else are ranked the right way round). This streaming variant keeps one ``SignedLogHistogram``
per feature (signed values keep their sign; magnitudes on a log grid) and tracks each
feature's skewness from it.

Why it is here next to Half-Space Trees: HST compares a point with the mass of the previous
``window_size`` points, so a burst of similar anomalies (an SMS blast: thousands of near-equal
vectors) fills its reference window and masks itself. ECOD's reference is the whole recent
population (millions of updates before any forgetting), so a burst moves it by a negligible
amount, and every per-feature tail doubles as an explanation ("p99.9 of recipients in 1h").

A missing value (key absent, or NaN) is missing: it neither updates that feature's histogram nor
contributes to the score. A new feature gets its own histogram on the first value learned.
Deterministic (no randomness), so ``seed`` is accepted only for a uniform interface.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from models.histogram import LogHistogram, SignedLogHistogram

Side = Literal["left", "right"]


class StreamingECOD:
    """Empirical-CDF outlier detector over a dict of (signed) features, both tails as published.

    Parameters
    ----------
    decay_every
        Updates between halvings of every feature histogram (forgetting horizon).
    min_tail
        Floor on a feature's tail probability, so one feature cannot dominate unboundedly.
    seed
        Unused (the detector is deterministic); kept for a uniform constructor.
    tails
        ``"both"``: ECOD as published (``max(O_left, O_right, O_auto)``). ``"right"``: right
        tails only, for feature sets where every feature is built so that "more" is "more
        suspicious".

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

    def __init__(self, decay_every: int = 2_000_000, min_tail: float = 1e-7, seed: int | None = None,
                 tails: Literal["both", "right"] = "both") -> None:
        if tails not in ("both", "right"):
            raise ValueError(f"tails must be 'both' or 'right', not {tails!r}")
        self.decay_every = decay_every
        self.min_tail = min_tail
        self.seed = seed
        self.tails = tails
        self.histograms: dict[str, SignedLogHistogram] = {}
        self.n_learned = 0

    def _histogram(self, feature: str) -> SignedLogHistogram:
        hist = self.histograms.get(feature)
        if hist is None:
            hist = SignedLogHistogram(min_value=1e-3, gamma=1.05, n_buckets=512,
                                      decay=0.5, decay_every=self.decay_every, refresh_every=256)
            self.histograms[feature] = hist
        return hist

    def learn_one(self, x: dict[str, float]) -> None:
        for feature, value in x.items():
            if not math.isnan(value):           # NaN: missing, not learned
                self._histogram(feature).update(value)
        self.n_learned += 1

    def tails_one(self, x: dict[str, float]) -> dict[str, float]:
        """P(X_f >= x_f) per known feature of ``x`` with a positive value: the right-tail rarity
        of "more" (what a rule on a count or a share reads); the score reads both tails."""
        histograms = self.histograms
        min_tail = self.min_tail
        tails: dict[str, float] = {}
        for feature, value in x.items():
            hist = histograms.get(feature)
            if hist is None or not value > 0.0:
                continue
            tail = hist.right(value)
            tails[feature] = tail if tail > min_tail else min_tail
        return tails

    def sides(self) -> dict[str, Side]:
        """The tail ``O_auto`` reads per feature: ``left`` for a feature skewed left, else ``right``."""
        return {f: ("left" if h.skewness() < 0.0 else "right") for f, h in self.histograms.items()}

    def _terms(self, x: dict[str, float]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        """Per known, present feature: ``-ln`` of its left tail, right tail, and skewness-side tail."""
        left: dict[str, float] = {}
        right: dict[str, float] = {}
        auto: dict[str, float] = {}
        min_tail = self.min_tail
        both = self.tails == "both"
        histograms = self.histograms
        log = math.log
        for feature, value in x.items():
            hist = histograms.get(feature)
            if hist is None or math.isnan(value):
                continue
            if both:
                lt, r = hist.both(value)
                lt = -log(lt if lt > min_tail else min_tail)
                r = -log(r if r > min_tail else min_tail)
                left[feature] = lt
                right[feature] = r
                auto[feature] = lt if hist.skewness() < 0.0 else r
            else:
                r = hist.right(value)
                right[feature] = -log(r if r > min_tail else min_tail)
        return left, right, auto

    def outlier_scores(self, x: dict[str, float]) -> tuple[float, float, float]:
        """(``O_left``, ``O_right``, ``O_auto``) of the ECOD paper (with ``tails="right"``: 0, ``O_right``, 0)."""
        left, right, auto = self._terms(x)
        return float(sum(left.values())), float(sum(right.values())), float(sum(auto.values()))

    def score_one(self, x: dict[str, float]) -> float:
        """``max(O_left, O_right, O_auto)``: sums of ``-ln tail`` (0 for an entirely typical point)."""
        return max(self.outlier_scores(x))

    def contributions_one(self, x: dict[str, float]) -> dict[str, float]:
        """Per feature, its ``-ln tail`` in the sum that is the score (they add up to
        ``score_one``): which features, on which side, made ``x`` rare. Missing ones are absent."""
        terms = self._terms(x)
        return max(terms, key=lambda t: sum(t.values())) if terms[1] else {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # checkpoints of the right-tail-only version hold a LogHistogram per feature (non-negative
        # grid): carried over onto the signed grid, counts kept
        state.setdefault("tails", "both")
        histograms = state.get("histograms", {})
        for feature, hist in list(histograms.items()):
            if isinstance(hist, LogHistogram):
                histograms[feature] = SignedLogHistogram.from_log_histogram(hist)
        self.__dict__.update(state)
