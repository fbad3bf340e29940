"""The models of the table replay behind one interface: ours and River's for reference."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

HST_WINDOW = 250          # River's default window: a 6 000-row table holds 24 of them


class Scorer(Protocol):
    """One model in the replay: score a row, then learn it (with its label when supervised)."""

    supervised: bool

    def score(self, x: dict[str, float]) -> float: ...

    def learn(self, x: dict[str, float], y: int | None) -> None: ...


class OnlineModel:
    """A River-style model (``*_one`` methods) and whether it takes NaN: River's own models do
    not, so with ``drop_nan`` they get the row without its missing cells."""

    def __init__(self, model: Any, drop_nan: bool = False) -> None:
        self.model = model
        self.drop_nan = drop_nan

    def _x(self, x: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in x.items() if not math.isnan(v)} if self.drop_nan else x


class Detector(OnlineModel):
    """An unsupervised model (``score_one``/``learn_one``); NaN-free dicts when ``drop_nan``."""

    supervised = False

    def score(self, x: dict[str, float]) -> float:
        return float(self.model.score_one(self._x(x)))

    def learn(self, x: dict[str, float], y: int | None) -> None:
        self.model.learn_one(self._x(x))

    def explain(self, x: dict[str, float]) -> str | None:
        """The feature contributing most to the score (``contributions_one``), if the model tells."""
        contributions = getattr(self.model, "contributions_one", None)
        if contributions is None:
            return None
        found: dict[str, float] = contributions(self._x(x))
        return max(found, key=found.__getitem__) if found else None


class Classifier(OnlineModel):
    """A supervised model: ``learn_one(x, bool)`` and ``proba_one``/``predict_proba_one``."""

    supervised = True

    def score(self, x: dict[str, float]) -> float:
        predict = getattr(self.model, "predict_proba_one", None)
        if predict is not None:                 # River's classifiers
            return float(predict(self._x(x)).get(True, 0.0))
        return float(self.model.score_one(self._x(x)))

    def learn(self, x: dict[str, float], y: int | None) -> None:
        self.model.learn_one(self._x(x), bool(y))


def default_models(features: Sequence[str], seed: int) -> dict[str, Callable[[], Scorer]]:
    """Ours, and River's for reference, each a fresh factory (name → what it is in the docs)."""
    from river import anomaly, compose, linear_model, preprocessing

    from models import FeedbackLearner, ScaledHalfSpaceTrees, StreamingECOD

    return {
        "hst": lambda: Detector(ScaledHalfSpaceTrees(n_trees=10, height=8, window_size=HST_WINDOW, seed=seed,
                                                     features=features)),
        "ecod": lambda: Detector(StreamingECOD(seed=seed)),
        "feedback": lambda: Classifier(FeedbackLearner(min_each=5, seed=seed)),
        "river_hst": lambda: Detector(compose.Pipeline(
            preprocessing.MinMaxScaler(),
            anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=HST_WINDOW, seed=seed)), drop_nan=True),
        "river_lr": lambda: Classifier(compose.Pipeline(
            preprocessing.StandardScaler(), linear_model.LogisticRegression()), drop_nan=True),
    }


MODEL_NOTES = {
    "hst": "ours: ScaledHalfSpaceTrees (signed log1p, min-max, declared feature space; unsupervised)",
    "ecod": "ours: StreamingECOD (both tails as published; unsupervised)",
    "feedback": "ours: FeedbackLearner (supervised, labels after the delay)",
    "river_hst": "River: MinMaxScaler | HalfSpaceTrees (reference; unsupervised)",
    "river_lr": "River: StandardScaler | LogisticRegression (reference; supervised, same delay)",
}

