"""What every model does with the inputs real feature tables hold.

Per-subscriber aggregate tables (and the scorer's feature dicts) carry empty fields, signed
values (balance changes, month-on-month deltas), features that a given row lacks, and fraud that
sits *below* the population on most features. The contract, per model:

- missing (key absent or NaN) is missing: the same answer as the key absent, never 0, no crash;
- signed features stay signed (a large negative value is not the same as 0);
- HST's feature space is the declared feature list, not the first point's keys;
- ECOD reads both tails (side per feature from its skewness, as published), so fraud lower
  than the population ranks above it;
- HST and ECOD name the features that made a point rare; calibrated scores give an alert cut
  from a false-alarm budget.
"""

from __future__ import annotations

import math
import pickle
import random

import pytest
from sklearn.metrics import roc_auc_score

from models import CalibratedDetector, FeedbackLearner, ScaledHalfSpaceTrees, StreamingECOD
from models.calibration import PercentileCalibrator

NAN = math.nan
FEATURES = [f"f{i}" for i in range(8)]


def _normal(rng: random.Random) -> dict[str, float]:
    return {f: rng.lognormvariate(2.0, 0.6) for f in FEATURES}


# -- missing: absent key or NaN ------------------------------------------------------------


def _hst(**kw: object) -> ScaledHalfSpaceTrees:
    return ScaledHalfSpaceTrees(window_size=50, seed=3, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [_hst, StreamingECOD], ids=["hst", "ecod"])
def test_nan_is_the_same_as_an_absent_key(make: type) -> None:
    rng = random.Random(1)
    stream = [_normal(rng) for _ in range(400)]
    holes = random.Random(2)
    with_nan, without = make(), make()
    for i, x in enumerate(stream):
        # (the first point complete: HST without a declared feature list builds on its keys)
        gone = {f for f in FEATURES if holes.random() < 0.2} if i else set()
        with_nan.learn_one({f: (NAN if f in gone else v) for f, v in x.items()})
        without.learn_one({f: v for f, v in x.items() if f not in gone})
    probe = _normal(rng)
    partial = {f: v for f, v in probe.items() if f not in ("f1", "f5")}
    assert with_nan.score_one({**partial, "f1": NAN, "f5": NAN}) == without.score_one(partial)
    assert with_nan.score_one(partial) == without.score_one(partial)
    assert math.isfinite(with_nan.score_one({f: NAN for f in FEATURES}))


def test_hst_missing_is_not_zero() -> None:
    """0 is a value (far below this population: a rare point); missing follows the mass."""
    rng = random.Random(4)
    model = _hst()
    model.learn_one({f: 0.0 for f in FEATURES})           # the scaler's range reaches 0
    for _ in range(1000):
        model.learn_one({f: rng.uniform(50.0, 100.0) for f in FEATURES})
    typical = {f: 75.0 for f in FEATURES}
    zeroed = {**typical, "f0": 0.0, "f1": 0.0, "f2": 0.0}
    missing = {f: v for f, v in typical.items() if f not in ("f0", "f1", "f2")}
    assert model.score_one({**typical, "f0": NAN, "f1": NAN, "f2": NAN}) == model.score_one(missing)
    assert model.score_one(missing) < model.score_one(zeroed)


def test_ecod_absent_key_is_not_a_zero_observation() -> None:
    """Learning rows that lack a feature leaves that feature's distribution alone."""
    rng = random.Random(5)
    full = [_normal(rng) for _ in range(600)]
    sparse, dense = StreamingECOD(), StreamingECOD()
    for x in full:
        sparse.learn_one(x)
        dense.learn_one(x)
        sparse.learn_one({f: v for f, v in x.items() if f != "f0"})   # the same row, f0 empty
        dense.learn_one(x)
    probe = {"f0": 7.0}
    assert sparse.score_one(probe) == pytest.approx(dense.score_one(probe), rel=0.05)
    assert sparse.score_one({"f0": 3.0}) == pytest.approx(dense.score_one({"f0": 3.0}), rel=0.05)


def test_feedback_learner_missing_is_its_own_evidence() -> None:
    """Rows whose ``f`` is empty are fraud; ``f`` itself is centred noise: only a missing
    indicator tells them apart (an absent key read as 'average', or NaN read as 0, cannot)."""
    rng = random.Random(6)
    learner = FeedbackLearner(min_each=5, seed=0)
    for _ in range(1500):
        learner.learn_one({"f": rng.uniform(-1.0, 1.0), "g": rng.gauss(5.0, 1.0)}, False)
        learner.learn_one({"f": NAN, "g": rng.gauss(5.0, 1.0)}, True)
    fraud_like = learner.proba_one({"g": 5.0})
    assert fraud_like is not None and fraud_like > 0.8
    assert learner.proba_one({"f": NAN, "g": 5.0}) == fraud_like
    fine = learner.proba_one({"f": 0.0, "g": 5.0})
    assert fine is not None and fine < 0.2
    assert math.isfinite(learner.score_one({"f": NAN, "g": NAN}))


# -- signed features -------------------------------------------------------------------------


def test_hst_keeps_signed_features_signed() -> None:
    rng = random.Random(7)
    model = ScaledHalfSpaceTrees(window_size=200, seed=3)
    for _ in range(1000):
        model.learn_one({"balance_delta": rng.gauss(0.0, 5.0), "calls": rng.lognormvariate(2.0, 0.5)})
    assert model.lo["balance_delta"] < 0.0
    typical = {"balance_delta": 0.5, "calls": 7.0}
    drained = {"balance_delta": -5000.0, "calls": 7.0}
    assert model.score_one(drained) > model.score_one(typical)


def test_ecod_keeps_signed_features_signed() -> None:
    rng = random.Random(8)
    model = StreamingECOD()
    for _ in range(2000):
        model.learn_one({"balance_delta": rng.gauss(0.0, 5.0)})
    assert model.score_one({"balance_delta": -200.0}) > 5.0 > model.score_one({"balance_delta": 0.3})
    assert model.score_one({"balance_delta": -200.0}) == pytest.approx(model.score_one({"balance_delta": 200.0}),
                                                                      rel=0.2)


def test_feedback_learner_keeps_signed_features_signed() -> None:
    rng = random.Random(9)
    learner = FeedbackLearner(min_each=5, seed=0)
    for _ in range(600):
        learner.learn_one({"delta": rng.uniform(-10.0, 10.0)}, False)
        learner.learn_one({"delta": rng.uniform(-100.0, -50.0)}, True)
    drained, small = learner.proba_one({"delta": -80.0}), learner.proba_one({"delta": -5.0})
    assert drained is not None and small is not None
    assert drained > 0.8 and small < 0.3


# -- declared feature space ------------------------------------------------------------------


def test_hst_splits_on_a_declared_feature_absent_from_the_first_point() -> None:
    rng = random.Random(10)
    declared = [*FEATURES, "late"]
    model = ScaledHalfSpaceTrees(window_size=50, seed=3, features=declared)
    assert "late" in model.names                     # fixed at construction
    model.learn_one({f: rng.lognormvariate(2.0, 0.6) for f in FEATURES})     # no "late" yet
    for _ in range(400):
        model.learn_one({**{f: rng.lognormvariate(2.0, 0.6) for f in FEATURES}, "late": rng.uniform(1.0, 2.0)})
    typical = {f: 7.0 for f in FEATURES}
    assert model.score_one({**typical, "late": 1e6}) > model.score_one({**typical, "late": 1.5})


def test_hst_without_a_declaration_builds_on_the_first_point_as_river() -> None:
    model = ScaledHalfSpaceTrees(window_size=50, seed=3)
    model.learn_one({"a": 1.0})
    assert model.names == ("a",)


# -- both tails --------------------------------------------------------------------------------


def _lower_fraud_stream(seed: int, n: int) -> list[tuple[dict[str, float], int]]:
    """Heavy-tailed usage counts; fraud (30 %) sits lower on 8 features and higher on 2."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        fraud = rng.random() < 0.3
        x = {}
        for i in range(10):
            level = rng.lognormvariate(3.0, 0.7)
            if fraud:
                level *= 0.25 if i < 8 else 3.0
            x[f"u{i}"] = level
        rows.append((x, int(fraud)))
    return rows


def test_ecod_ranks_fraud_that_is_lower_on_most_features() -> None:
    model = StreamingECOD()
    labels, scores = [], []
    for x, y in _lower_fraud_stream(11, 3000):
        scores.append(model.score_one(x))
        labels.append(y)
        model.learn_one(x)
    assert roc_auc_score(labels[300:], scores[300:]) > 0.8


def test_ecod_picks_the_tail_side_from_the_skewness() -> None:
    rng = random.Random(12)
    model = StreamingECOD()
    for _ in range(3000):
        v = rng.lognormvariate(2.0, 0.8)
        model.learn_one({"right_skewed": v, "left_skewed": 1000.0 - v})
    assert model.sides() == {"left_skewed": "left", "right_skewed": "right"}
    # as published: the score is the largest of the left, right and skewness-chosen sums
    x = {"right_skewed": 0.5, "left_skewed": 999.5}
    left, right, auto = model.outlier_scores(x)
    assert model.score_one(x) == max(left, right, auto) > 3.0


# -- contributions -------------------------------------------------------------------------


def _train(model: object, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        model.learn_one(_normal(rng))  # type: ignore[attr-defined]


@pytest.mark.parametrize("make", [lambda: ScaledHalfSpaceTrees(window_size=200, seed=1, features=FEATURES),
                                  StreamingECOD], ids=["hst", "ecod"])
def test_contributions_name_the_feature_that_made_a_point_rare(make: type) -> None:
    model = make()
    _train(model, 1200, 13)
    for odd, value in (("f3", 5000.0), ("f6", 0.01)):
        x = {f: 7.4 for f in FEATURES}
        x[odd] = value
        contributions = model.contributions_one(x)
        assert set(contributions) <= set(FEATURES)
        assert max(contributions, key=contributions.__getitem__) == odd


def test_ecod_contributions_add_up_to_the_score() -> None:
    model = StreamingECOD()
    _train(model, 1000, 14)
    x = {**{f: 7.0 for f in FEATURES}, "f2": 300.0, "f4": NAN}
    contributions = model.contributions_one(x)
    assert "f4" not in contributions
    assert sum(contributions.values()) == pytest.approx(model.score_one(x))


# -- calibration: a cut from a false-alarm budget -----------------------------------------


def test_the_cut_for_a_budget_passes_that_share_of_the_population() -> None:
    rng = random.Random(15)
    det = CalibratedDetector(StreamingECOD(), warmup=500)
    for _ in range(20_000):
        det.learn_one(_normal(rng))
    for alpha in (0.05, 0.01, 0.002):
        cut = det.cut(alpha)
        fresh = [det.raw_one(_normal(rng)) for _ in range(10_000)]
        share = sum(s > cut for s in fresh) / len(fresh)
        assert alpha / 2 <= share <= alpha * 2, (alpha, share)


def test_the_cut_for_a_budget_holds_for_hst_scores_near_one() -> None:
    """HST's raw scores crowd just below 1; the cut still passes the budgeted share. Bounded
    features, so the min-max scaler is settled and the score distribution stationary; the fresh
    points are scored and learned as a stream (HST's reference window moves on)."""
    rng = random.Random(16)
    det = CalibratedDetector(ScaledHalfSpaceTrees(window_size=250, seed=2, features=FEATURES), warmup=500)

    def point() -> dict[str, float]:
        return {f: rng.uniform(0.0, 100.0) for f in FEATURES}

    for _ in range(12_000):
        det.learn_one(point())
    cuts = {alpha: det.cut(alpha) for alpha in (0.05, 0.01)}
    assert 0.5 < cuts[0.05] < cuts[0.01] < 1.0
    fresh = []
    for _ in range(10_000):
        x = point()
        fresh.append(det.raw_one(x))
        det.learn_one(x, fresh[-1])
    for alpha, cut in cuts.items():
        share = sum(s > cut for s in fresh) / len(fresh)
        assert alpha / 2 <= share <= alpha * 2, (alpha, share)


def test_budget_to_tail_probability() -> None:
    # 1 alert per 100k entities a day, each entity scored 50 times a day: 2e-7 per scoring
    assert PercentileCalibrator.alpha_for_budget(1.0, per_entity_per_day=50.0) == pytest.approx(2e-7)
    with pytest.raises(ValueError, match="per_entity_per_day"):
        PercentileCalibrator.alpha_for_budget(1.0, per_entity_per_day=0.0)


def test_new_state_survives_a_pickle() -> None:
    rng = random.Random(17)
    ecod, hst = StreamingECOD(), ScaledHalfSpaceTrees(window_size=50, seed=1, features=FEATURES)
    learner = FeedbackLearner(min_each=2)
    for i in range(300):
        x = _normal(rng)
        x["f1"] = -x["f1"]
        ecod.learn_one(x)
        hst.learn_one(x)
        learner.learn_one(x, i % 3 == 0)
    probe = {**_normal(rng), "f2": NAN, "f1": -40.0}
    for model in (ecod, hst):
        assert pickle.loads(pickle.dumps(model)).score_one(probe) == model.score_one(probe)
    assert pickle.loads(pickle.dumps(learner)).proba_one(probe) == learner.proba_one(probe)


def test_models_pickled_by_the_previous_formats_load() -> None:
    """ECOD's right-tail LogHistograms move onto the signed grid (counts kept); a format-1
    feedback learner (River's pipeline) keeps predicting with it; an HST without a declared
    feature space loads with none. (The scorer refuses such checkpoints by their detector
    versions; these are the models' own guarantees.)"""
    from river import compose, linear_model, optim, preprocessing

    from models.histogram import LogHistogram

    rng = random.Random(18)
    old_hist = LogHistogram(min_value=1e-3, gamma=1.05, n_buckets=512, decay=0.5, decay_every=2_000_000,
                            refresh_every=256)
    values = [rng.lognormvariate(2.0, 0.6) for _ in range(3000)]
    for v in values:
        old_hist.update(v)
    ecod = StreamingECOD.__new__(StreamingECOD)
    ecod.__dict__.update({"decay_every": 2_000_000, "min_tail": 1e-7, "seed": None,
                          "histograms": {"f0": old_hist}, "n_learned": 3000})
    loaded = pickle.loads(pickle.dumps(ecod))
    assert loaded.tails == "both"
    old_hist._refresh()                     # its tails from every count, as the converted one's
    for probe in (3.0, 7.0, 30.0):
        assert loaded.tails_one({"f0": probe})["f0"] == pytest.approx(old_hist.tail(probe), rel=1e-9)
        assert loaded.histograms["f0"].left(probe) == pytest.approx(sum(v <= probe for v in values) / 3000, abs=0.02)

    pipeline = compose.Pipeline(preprocessing.StandardScaler(),
                                linear_model.LogisticRegression(optimizer=optim.SGD(0.05), l2=1e-4))
    for _ in range(50):
        pipeline.learn_one({"sms": math.log1p(300.0)}, True)
        pipeline.learn_one({"sms": math.log1p(2.0)}, False)
    old_learner = FeedbackLearner.__new__(FeedbackLearner)
    old_learner.__dict__.update({"min_each": 5, "seed": 0, "model": pipeline, "n_positive": 50, "n_negative": 50})
    learner = pickle.loads(pickle.dumps(old_learner))
    fraud = learner.proba_one({"sms": 300.0})
    assert learner.legacy is not None and fraud is not None and fraud > 0.5 > (learner.proba_one({"sms": 2.0}) or 1)
    learner.learn_one({"sms": 250.0}, True)
    assert learner.n_positive == 51

    hst = ScaledHalfSpaceTrees(window_size=20, seed=1)
    for _ in range(60):
        hst.learn_one(_normal(rng))
    state = dict(hst.__dict__)
    del state["features"]
    old_hst = ScaledHalfSpaceTrees.__new__(ScaledHalfSpaceTrees)
    old_hst.__dict__.update(state)
    again = pickle.loads(pickle.dumps(old_hst))
    probe = _normal(rng)
    assert again.features is None and again.score_one(probe) == hst.score_one(probe)


def test_the_signed_histogram_reads_both_tails() -> None:
    from models.histogram import SignedLogHistogram

    rng = random.Random(19)
    values = [rng.gauss(0.0, 20.0) for _ in range(4000)] + [0.0] * 1000
    hist = SignedLogHistogram(refresh_every=64)
    for v in values:
        hist.update(v)
    hist.update(NAN)                                    # not a value
    assert hist.total == 5000
    for probe in (-60.0, -20.0, -1.0, 0.0, 0.5, 20.0, 60.0):
        left, right = hist.both(probe)
        assert (left, right) == (hist.left(probe), hist.right(probe))
        assert left == pytest.approx(sum(v <= probe for v in values) / 5000, abs=0.01)
        assert right == pytest.approx(sum(v >= probe for v in values) / 5000, abs=0.01)
    assert hist.left(0.0) + hist.right(0.0) == pytest.approx(1.2, abs=0.01)   # the zeros are in both
    assert abs(hist.skewness()) < 0.1
    for v in range(3000):
        hist.update(rng.lognormvariate(3.0, 1.0))
    assert hist.skewness() > 1.0
