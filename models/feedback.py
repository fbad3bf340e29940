"""The supervised side: partner feedback (confirmed fraud / false positive) → P(fraud | features).

An online logistic regression (River) on the same feature dicts the anomaly detectors see,
behind a standard scaler. It is trained only by partner labels, so it starts silent: until it
has seen ``min_each`` labels of both classes ``proba_one`` answers ``None`` and the fusion in the
scorer ignores it.
"""

from __future__ import annotations

import math
from typing import Any

from river import compose, linear_model, optim, preprocessing


class FeedbackLearner:
    """Online P(fraud) from labelled feature dicts.

    Examples
    --------
    >>> learner = FeedbackLearner(min_each=2, seed=0)
    >>> for _ in range(20):
    ...     learner.learn_one({"sms_out_1h": 300.0, "url_share_1h": 1.0}, True)
    ...     learner.learn_one({"sms_out_1h": 3.0, "url_share_1h": 0.0}, False)
    >>> learner.proba_one({"sms_out_1h": 250.0, "url_share_1h": 1.0}) > 0.5
    True
    """

    def __init__(self, min_each: int = 5, learning_rate: float = 0.05, seed: int | None = 0) -> None:
        self.min_each = min_each
        self.seed = seed
        self.model: Any = compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=1e-4),
        )
        self.n_positive = 0
        self.n_negative = 0

    @property
    def ready(self) -> bool:
        return self.n_positive >= self.min_each and self.n_negative >= self.min_each

    @staticmethod
    def _log(x: dict[str, float]) -> dict[str, float]:
        return {k: math.log1p(v) if v > 0.0 else 0.0 for k, v in x.items()}

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.model.learn_one(self._log(x), y)
        if y:
            self.n_positive += 1
        else:
            self.n_negative += 1

    def proba_one(self, x: dict[str, float]) -> float | None:
        """P(confirmed fraud), or ``None`` until both classes have ``min_each`` labels."""
        if not self.ready:
            return None
        return float(self.model.predict_proba_one(self._log(x)).get(True, 0.0))

    def score_one(self, x: dict[str, float]) -> float:
        """River-style score: P(fraud), 0.5 when not ready."""
        proba = self.proba_one(x)
        return 0.5 if proba is None else proba
