"""Detectors with River's interface (``learn_one``/``score_one`` on plain dicts of numbers).

- ``ScaledHalfSpaceTrees``: the baseline (River HST on log/min-max scaled features).
- ``PoissonBurst``: burst-aware; Poisson surprise of an entity's recent rates vs its own past.
- ``StreamingECOD``: per-feature empirical tails of a decayed population; robust to bursts.
- ``CalibratedDetector``: any detector + percentile calibration + warm-up gate.
- ``FeedbackLearner``: online P(fraud) trained by partner feedback.
"""

from models.burst import PoissonBurst
from models.calibration import CalibratedDetector, PercentileCalibrator, rarity_label
from models.ecod import StreamingECOD
from models.feedback import FeedbackLearner
from models.histogram import LogHistogram
from models.hst import ScaledHalfSpaceTrees

__all__ = [
    "CalibratedDetector",
    "FeedbackLearner",
    "LogHistogram",
    "PercentileCalibrator",
    "PoissonBurst",
    "ScaledHalfSpaceTrees",
    "StreamingECOD",
    "rarity_label",
]
