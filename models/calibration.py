"""Percentile calibration: raw detector scores → "how rare is this among normal traffic".

Raw scores mean different things per model (HST gives [0, 1], ECOD a sum of log tails). A
``PercentileCalibrator`` keeps a decayed log-histogram of the raw scores the model produced on
traffic it learned from (unflagged traffic), and reports a raw score's tail probability, so
"tail 1e-4" (p99.99) means the same for every model.

A false-alarm budget becomes an alert cut through the same sketch: ``alpha_for_budget`` turns
"alerts per 100k entities per day" into a tail probability per scoring, and ``cut(alpha)`` is
the raw score that share of the population exceeds — derived from the observed population,
not a constant.

``CalibratedDetector`` bundles a detector with its calibrator and a warm-up: until
``warmup`` points have been learned it answers tail 1.0 (nothing is rare yet) and may not alert.
"""

from __future__ import annotations

import math
from typing import Protocol

from models.histogram import LogHistogram


class AnomalyDetector(Protocol):
    """River's anomaly-detector interface on plain dicts."""

    def learn_one(self, x: dict[str, float]) -> None: ...

    def score_one(self, x: dict[str, float]) -> float: ...


class PercentileCalibrator:
    """Streaming CDF of raw scores (a DDSketch-like log histogram, decayed).

    Parameters
    ----------
    decay_every
        Scores between halvings of the counts.

    Examples
    --------
    >>> cal = PercentileCalibrator()
    >>> for i in range(10_000):
    ...     cal.learn_one(i / 10_000)
    >>> 0.09 < cal.tail(0.9) < 0.11
    True
    >>> 0.89 < cal.cut(0.1) < 0.91
    True
    """

    def __init__(self, decay_every: int = 2_000_000) -> None:
        # 1 % relative resolution from 1e-4 to ~4e5 covers HST's [0, 1] and ECOD's sums
        self.histogram = LogHistogram(min_value=1e-4, gamma=1.01, n_buckets=2200,
                                      decay=0.5, decay_every=decay_every, refresh_every=256)

    @property
    def n_seen(self) -> float:
        return self.histogram.total

    def learn_one(self, raw: float) -> None:
        if not math.isnan(raw):             # a NaN score is not learned
            self.histogram.update(raw)

    def tail(self, raw: float) -> float:
        """Share of learned raw scores at or above ``raw`` (smoothed, never 0)."""
        return self.histogram.tail(raw)

    def cut(self, alpha: float) -> float:
        """The raw score a share ``alpha`` of the learned scores exceeds: alert above it, and the
        population (what the calibrator learned) raises alerts at rate ``alpha``."""
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), not {alpha}")
        return self.histogram.value_at_tail(alpha)

    @staticmethod
    def alpha_for_budget(alerts_per_100k_per_day: float, *, per_entity_per_day: float) -> float:
        """Tail probability per scoring that spends a budget of ``alerts_per_100k_per_day``
        (e.g. 1 alert per 100k active entities a day) when each entity is scored
        ``per_entity_per_day`` times a day (an upper bound: an entity's scorings are correlated,
        so the alerts it raises on consecutive scorings are fewer distinct entities)."""
        if not per_entity_per_day > 0.0:
            raise ValueError(f"per_entity_per_day must be > 0, not {per_entity_per_day}")
        if not alerts_per_100k_per_day > 0.0:
            raise ValueError(f"alerts_per_100k_per_day must be > 0, not {alerts_per_100k_per_day}")
        return alerts_per_100k_per_day / 100_000.0 / per_entity_per_day

    def percentile(self, raw: float) -> float:
        return 1.0 - self.tail(raw)


def rarity_label(tail: float) -> str:
    """``p99.9``-style label of a tail probability (``p50`` at most common)."""
    if tail >= 0.5:
        return "p50"
    nines = min(6, max(0, math.floor(-math.log10(tail) + 1e-9)))
    if nines < 2:
        return f"p{round((1.0 - tail) * 100)}"
    return "p99." + "9" * (nines - 2) if nines > 2 else "p99"


class CalibratedDetector:
    """A detector, its percentile calibrator and a warm-up gate.

    Parameters
    ----------
    detector
        Anything with ``learn_one``/``score_one`` on dicts (HST, ECOD, ...).
    warmup
        Points to learn before ``tail_one`` reports anything rarer than 1.0.

    Examples
    --------
    >>> from models.ecod import StreamingECOD
    >>> det = CalibratedDetector(StreamingECOD(), warmup=100)
    >>> for i in range(500):
    ...     det.learn_one({"n": float(i % 7)})
    >>> det.is_warm
    True
    >>> det.tail_one({"n": 3.0}) > 0.1
    True
    >>> det.tail_one({"n": 500.0}) < 0.01
    True
    """

    def __init__(self, detector: AnomalyDetector, warmup: int = 2000) -> None:
        self.detector = detector
        self.calibrator = PercentileCalibrator()
        self.warmup = warmup
        self.n_learned = 0

    @property
    def is_warm(self) -> bool:
        return self.n_learned >= self.warmup

    def raw_one(self, x: dict[str, float]) -> float:
        return float(self.detector.score_one(x))

    def tail_one(self, x: dict[str, float], raw: float | None = None) -> float:
        """Calibrated tail probability of ``x`` (1.0 while warming up)."""
        if not self.is_warm:
            return 1.0
        return self.calibrator.tail(self.raw_one(x) if raw is None else raw)

    def cut(self, alpha: float) -> float:
        """The raw score above which a share ``alpha`` of the learned population lies."""
        return self.calibrator.cut(alpha)

    def score_one(self, x: dict[str, float]) -> float:
        """Calibrated percentile in [0, 1] (River's "higher is more anomalous")."""
        return 1.0 - self.tail_one(x)

    def learn_one(self, x: dict[str, float], raw: float | None = None) -> None:
        """Learn ``x``; ``raw`` is its raw score before learning when the caller already has it."""
        self.calibrator.learn_one(self.raw_one(x) if raw is None else raw)
        self.detector.learn_one(x)
        self.n_learned += 1

