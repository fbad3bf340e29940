"""The replay's model wrappers: what each model is given and how its score is read."""

from __future__ import annotations

import math
from typing import Any

from services.devtools.simulator.table.scorers import Classifier, Detector

ROW = {"calls": 3.0, "delta": math.nan}


class Recorder:
    """A River-style model that records what it is given and answers fixed numbers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, float], Any]] = []

    def score_one(self, x: dict[str, float]) -> float:
        self.seen.append(("score", x, None))
        return 0.25

    def learn_one(self, x: dict[str, float], y: Any = None) -> None:
        self.seen.append(("learn", x, y))

    def contributions_one(self, x: dict[str, float]) -> dict[str, float]:
        return {"calls": 0.1, "delta": 0.7}


class Proba(Recorder):
    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        self.seen.append(("proba", x, None))
        return {True: 0.9, False: 0.1}


def test_a_detector_keeps_missing_cells_unless_it_drops_them() -> None:
    ours, river = Recorder(), Recorder()
    Detector(ours).learn(ROW, 1)
    Detector(river, drop_nan=True).learn(ROW, 1)
    assert ours.seen[0][0] == "learn" and set(ours.seen[0][1]) == {"calls", "delta"} and ours.seen[0][2] is None
    assert river.seen == [("learn", {"calls": 3.0}, None)]          # never the label: unsupervised
    assert Detector(Recorder(), drop_nan=True).score(ROW) == 0.25
    assert Detector(Recorder()).explain(ROW) == "delta"


def test_a_classifier_learns_the_label_and_scores_by_probability_when_it_can() -> None:
    river = Proba()
    model = Classifier(river, drop_nan=True)
    assert model.score(ROW) == 0.9
    model.learn(ROW, 1)
    assert river.seen == [("proba", {"calls": 3.0}, None), ("learn", {"calls": 3.0}, True)]
    assert Classifier(Recorder()).score(ROW) == 0.25            # no predict_proba_one: score_one
    assert not Detector.supervised and Classifier.supervised
