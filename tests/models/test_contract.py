"""Contract checks every detector in ``models`` passes (River's estimator checks, on plain dicts)."""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from typing import Any

import pytest

from models import CalibratedDetector, FeedbackLearner, PoissonBurst, ScaledHalfSpaceTrees, StreamingECOD
from models.burst import BurstAwareHST

FEATURES = ("sms_out_1h", "new_recipients_1h", "url_share_1h", "call_out_24h")


def _stream(seed: int, n: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{f: rng.expovariate(1.0) * (10 if f.endswith("1h") else 1) for f in FEATURES} for _ in range(n)]


CHANNELS = [("sms", None, "sms_out_1h", "call_out_24h"), ("rcpt", None, "new_recipients_1h", "call_out_24h")]

DETECTORS: dict[str, Callable[[int], Any]] = {
    "burst": lambda seed: PoissonBurst(CHANNELS, seed=seed),
    "burst-hst": lambda seed: BurstAwareHST(CHANNELS, window_size=100, seed=seed),
    "hst": lambda seed: ScaledHalfSpaceTrees(window_size=100, seed=seed),
    "ecod": lambda seed: StreamingECOD(seed=seed),
    "calibrated-ecod": lambda seed: CalibratedDetector(StreamingECOD(seed=seed), warmup=100),
    "calibrated-hst": lambda seed: CalibratedDetector(ScaledHalfSpaceTrees(window_size=100, seed=seed), warmup=100),
}


@pytest.fixture(params=sorted(DETECTORS))
def make(request: pytest.FixtureRequest) -> Callable[[int], Any]:
    return DETECTORS[request.param]


def _train(model: Any, data: list[dict[str, float]]) -> Any:
    for x in data:
        model.learn_one(x)
    return model


def test_pickle_round_trip_keeps_scores(make: Callable[[int], Any]) -> None:
    model = _train(make(3), _stream(0, 600))
    clone = pickle.loads(pickle.dumps(model))
    probe = _stream(1, 50)
    assert [model.score_one(x) for x in probe] == [clone.score_one(x) for x in probe]
    # and both keep learning identically
    more = _stream(2, 200)
    _train(model, more)
    _train(clone, more)
    assert [model.score_one(x) for x in probe] == [clone.score_one(x) for x in probe]


def test_deterministic_with_a_seed(make: Callable[[int], Any]) -> None:
    data, probe = _stream(0, 600), _stream(1, 50)
    a, b = _train(make(7), data), _train(make(7), data)
    assert [a.score_one(x) for x in probe] == [b.score_one(x) for x in probe]


def test_missing_and_new_features(make: Callable[[int], Any]) -> None:
    model = _train(make(1), _stream(0, 600))
    partial = {"sms_out_1h": 3.0}
    assert isinstance(model.score_one(partial), float)
    novel = {"sms_out_1h": 3.0, "never_seen_before": 12.0}
    assert isinstance(model.score_one(novel), float)
    model.learn_one(novel)
    model.learn_one(partial)
    model.learn_one({})
    assert isinstance(model.score_one({}), float)


def test_extremes_score_higher_than_typical(make: Callable[[int], Any]) -> None:
    model = _train(make(5), _stream(0, 1500))
    typical = {f: 1.0 for f in FEATURES}
    extreme = {f: 500.0 for f in FEATURES}
    assert model.score_one(extreme) > model.score_one(typical)


def test_calibrated_tail_is_silent_during_warmup() -> None:
    det = CalibratedDetector(StreamingECOD(), warmup=500)
    _train(det, _stream(0, 499))
    assert det.tail_one({"sms_out_1h": 1e6}) == 1.0
    det.learn_one(_stream(1, 1)[0])
    assert det.tail_one({"sms_out_1h": 1e6}) < 0.01


def test_calibration_means_the_same_across_models() -> None:
    """The share of training points above the calibrated p99 is ~1 % for every detector."""
    train, probe = _stream(0, 4000), _stream(1, 2000)
    for make in (DETECTORS["calibrated-ecod"], DETECTORS["calibrated-hst"]):
        det = _train(make(0), train)
        share = sum(det.tail_one(x) < 0.01 for x in probe) / len(probe)
        assert 0.002 <= share <= 0.03


def test_feedback_learner_contract() -> None:
    learner = FeedbackLearner(min_each=3, seed=0)
    fraud, fine = {"sms_out_1h": 300.0, "url_share_1h": 0.9}, {"sms_out_1h": 2.0, "url_share_1h": 0.0}
    assert learner.proba_one(fraud) is None
    for _ in range(30):
        learner.learn_one(fraud, True)
        learner.learn_one(fine, False)
    proba = learner.proba_one(fraud)
    assert proba is not None and proba > 0.5 > (learner.proba_one(fine) or 1.0)
    clone = pickle.loads(pickle.dumps(learner))
    assert clone.proba_one(fraud) == proba
    assert isinstance(learner.proba_one({"new_feature": 1.0}), float)
    twin = FeedbackLearner(min_each=3, seed=0)
    for _ in range(30):
        twin.learn_one(fraud, True)
        twin.learn_one(fine, False)
    assert twin.proba_one(fraud) == proba


@pytest.mark.parametrize("module", ["models.burst", "models.hst", "models.calibration", "models.histogram"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0
