"""ScaledHalfSpaceTrees against River: flat trees walked in C or Python, the same as River's own.

The specification is ``river.anomaly.HalfSpaceTrees`` fed the signed-log1p/min-max scaled
features, NaN dropped as missing (River's own rule for an absent key then applies), its trees
built on the declared features (River's ``limits``) or on the first point. Same seed, same stream:
the compiled walk (``models/_hstcore.c``), the Python walk (``models.hst._walk_python``) and River
give identical scores and masses, through window pivots, missing (absent, NaN), signed, new and
odd values; and a checkpoint pickled with River's trees inside loads and carries on as River would.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import anomaly

import models.hst as H
from models import ScaledHalfSpaceTrees

WALK = H.COMPILED_WALK


def _signed_log1p(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value) if value else 0.0


class RiverScaled:
    """The spec: NaN dropped → sign(v)·log1p(|v|) → min-max (clipped) → river.anomaly.HalfSpaceTrees,
    whose trees are built (as its ``learn_one`` builds them) on the declared features, or else on
    the first point's keys, NaN-valued ones included (River would build on the keys it is given)."""

    def __init__(self, window_size: int, seed: int, n_trees: int = 10, height: int = 8,
                 features: list[str] | None = None) -> None:
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}
        self.trees = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
        if features:
            self._build(features)

    def _build(self, space: list[str]) -> None:
        from river.tree.padded import make_padded_tree

        river = self.trees
        river.trees = [make_padded_tree(limits={name: (0.0, 1.0) for name in sorted(space)}, height=river.height,
                                        padding=0.15, rng=river.rng, r_mass=0, l_mass=0)
                       for _ in range(river.n_trees)]
        river._tree_nodes = [list(t.iter_dfs()) for t in river.trees]

    def _scaled(self, x: dict[str, float]) -> dict[str, float]:
        out = {}
        for name, value in x.items():
            if math.isnan(value):
                continue
            z = _signed_log1p(value)
            low = self.lo.get(name)
            if low is None or not self.hi[name] - low:
                out[name] = 0.0
                continue
            z = (z - low) / (self.hi[name] - low)
            out[name] = 1.0 if z > 1.0 else (0.0 if z < 0.0 else z)
        return out

    def learn_one(self, x: dict[str, float]) -> None:
        for name, value in x.items():
            if math.isnan(value):
                continue
            z = _signed_log1p(value)
            low = self.lo.get(name)
            if low is None:
                self.lo[name] = self.hi[name] = z
            elif z < low:
                self.lo[name] = z
            elif z > self.hi[name]:
                self.hi[name] = z
        if not self.trees.trees and x:
            self._build(list(x))
        self.trees.learn_one(self._scaled(x))

    def score_one(self, x: dict[str, float]) -> float:
        return float(self.trees.score_one(self._scaled(x)))


class PythonWalk:
    """The model with the compiled walk switched off (the Python reference)."""

    def __init__(self, model: ScaledHalfSpaceTrees) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.model, name)

        def call(*args: Any) -> Any:
            saved, H.COMPILED_WALK = H.COMPILED_WALK, None
            try:
                return method(*args)
            finally:
                H.COMPILED_WALK = saved

        return call


FEATURES = [f"f{i}" for i in range(12)]
_VALUES = st.one_of(st.floats(0.0, 1e4), st.floats(-1e4, 0.0),
                    st.sampled_from([0.0, -0.0, 1.0, -3.0, 1e300, -1e300, math.inf, -math.inf, math.nan]),
                    st.integers(-10**6, 10**6))
points = st.dictionaries(st.sampled_from([*FEATURES, "rare"]), _VALUES, min_size=1, max_size=13)


def test_the_compiled_walk_is_built_and_in_use() -> None:
    from models import _hstcore  # type: ignore[attr-defined]

    assert WALK is _hstcore.walk


def _check(stream: list[dict[str, float]], window_size: int, seed: int, *, n_trees: int = 10, height: int = 8,
           features: list[str] | None = None) -> int:
    """Score then learn every point in the three; returns how many compiled walks ran."""
    ran = 0
    river = RiverScaled(window_size, seed, n_trees, height, features)
    compiled = ScaledHalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed,
                                    features=features)
    python = PythonWalk(ScaledHalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed,
                                             features=features))
    for x in stream:
        expected = river.score_one(x)
        assert compiled.score_one(x) == expected == python.score_one(x)
        if compiled.names:
            args = (False, x, compiled.names, compiled.lo, compiled.hi, compiled.split, compiled.threshold,
                    compiled.l_mass, compiled.r_mass, n_trees, height, 0.1 * window_size)
            ran += WALK(*args) is not None
        river.learn_one(x)
        compiled.learn_one(x)
        python.learn_one(x)
    assert compiled.lo == python.model.lo == river.lo and compiled.hi == python.model.hi == river.hi
    assert list(compiled.l_mass) == list(python.model.l_mass)
    assert list(compiled.r_mass) == list(python.model.r_mass)
    return ran


@settings(max_examples=60, deadline=None)
@given(stream=st.lists(points, min_size=1, max_size=400), window_size=st.sampled_from([5, 20, 50]),
       seed=st.integers(0, 3), declared=st.booleans())
def test_scores_equal_river_on_generated_streams(stream: list[dict[str, float]], window_size: int,
                                                 seed: int, declared: bool) -> None:
    _check(stream, window_size, seed, features=[*FEATURES, "rare"] if declared else None)


def test_scores_equal_river_on_signed_values_with_nan_holes_and_declared_features() -> None:
    """A table-like stream: signed deltas, heavy tails, ~20 % empty fields as NaN, a declared
    feature the first rows lack; the three walks agree and the compiled one does the work."""
    import random

    rng = random.Random(8)
    stream = []
    for i in range(3000):
        x = {f: (rng.gauss(0.0, 50.0) if f in ("f0", "f1") else rng.paretovariate(1.5)) for f in FEATURES}
        if rng.random() < 0.2:
            for f in rng.sample(FEATURES, 3):
                x[f] = math.nan
        if i >= 500:
            x["rare"] = -rng.expovariate(0.1)
        stream.append(x)
    ran = _check(stream, window_size=200, seed=4, features=[*FEATURES, "rare"])
    assert ran > 2500
    ran = _check(stream[:1500], window_size=100, seed=1)
    assert ran > 1200


def test_scores_equal_river_over_many_windows_with_missing_and_new_features() -> None:
    import random

    rng = random.Random(5)
    stream = []
    for i in range(6000):
        x = {f: rng.expovariate(1.0) * 10 for f in FEATURES if rng.random() < 0.95}
        if i % 97 == 0:
            x["new_" + str(i)] = 5.0
        if i % 501 == 250:
            x = {f: 5000.0 for f in FEATURES}        # an outlier now and then
        stream.append(x)
    ran = _check(stream, window_size=250, seed=11)
    assert ran > 5000, "the compiled walk should have scored the stream"
    ran = _check(stream[:2000], window_size=100, seed=2, n_trees=3, height=5)
    assert ran > 1500


def test_a_checkpoint_holding_rivers_trees_carries_on_as_river() -> None:
    import random

    rng = random.Random(9)
    stream = [{f: rng.expovariate(1.0) * 10 for f in FEATURES} for _ in range(900)]
    river = RiverScaled(window_size=200, seed=4)
    for x in stream[:700]:
        river.learn_one(x)
    # the state a model pickled before the trees went flat: lo/hi and a river HalfSpaceTrees
    old = ScaledHalfSpaceTrees.__new__(ScaledHalfSpaceTrees)
    old.__dict__.update({"n_trees": 10, "height": 8, "window_size": 200, "seed": 4, "lo": dict(river.lo),
                         "hi": dict(river.hi), "trees": pickle.loads(pickle.dumps(river.trees)), "n_learned": 700})
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.names and not hasattr(loaded, "trees")
    for x in stream[700:]:
        assert loaded.score_one(x) == river.score_one(x)
        loaded.learn_one(x)
        river.learn_one(x)
    assert loaded.counter == river.trees.counter and loaded.n_learned == 900


def test_the_compiled_walk_leaves_unusual_input_to_python() -> None:
    model = ScaledHalfSpaceTrees(window_size=10, seed=1)
    for i in range(30):
        model.learn_one({"a": float(i), "b": 1.0})
    args: list[Any] = [False, {"a": 1.0, "b": 2.0}, model.names, model.lo, model.hi, model.split, model.threshold,
                       model.l_mass, model.r_mass, model.n_trees, model.height, 1.0]
    assert isinstance(WALK(*args), float)
    assert WALK(*[*args[:1], {"a": "text"}, *args[2:]]) is None            # not a number
    assert WALK(*[*args[:5], list(model.split), *args[6:]]) is None        # not an array
    assert WALK(*[*args[:7], model.l_mass[:-1], *args[8:]]) is None        # wrong size
    assert WALK(*[*args[:2], ("b",), *args[3:]]) is None                   # a split index outside names
    learn = [True, *args[1:]]
    assert WALK(*[*learn[:7], bytes(model.l_mass), *learn[8:]]) is None    # read-only masses
    lo, hi, masses = dict(model.lo), dict(model.hi), list(model.l_mass)
    assert WALK(*[*learn[:1], {"a": 1e9, "new": 3.0, "b": "text"}, *learn[2:]]) is None
    assert (model.lo, model.hi, list(model.l_mass)) == (lo, hi, masses)   # declined before any write
    with pytest.raises(TypeError):      # ... which rejects it, as River's scaling would
        model.score_one({"a": "text"})


@pytest.mark.parametrize(("n_features", "height", "seed"), [(1, 8, 0), (3, 1, 1), (12, 8, 2), (40, 8, 7), (40, 5, 3)])
def test_the_trees_are_the_ones_river_builds(n_features: int, height: int, seed: int) -> None:
    import random

    from river.tree.padded import make_padded_tree

    x = {f"g{i:02d}": 1.0 for i in reversed(range(n_features))}
    ours = ScaledHalfSpaceTrees(n_trees=4, height=height, seed=seed)
    ours._build(x)
    rng = random.Random(seed)
    river_trees = [make_padded_tree(limits={name: (0.0, 1.0) for name in sorted(x)}, height=height, padding=0.15,
                                    rng=rng, r_mass=0, l_mass=0) for _ in range(4)]
    theirs = ScaledHalfSpaceTrees(n_trees=4, height=height)
    nodes = (1 << (height + 1)) - 1
    theirs._flatten(river_trees, [[0] * nodes] * 4, [[0] * nodes] * 4)
    assert ours.names == theirs.names
    assert list(ours.split) == list(theirs.split)
    assert list(ours.threshold) == list(theirs.threshold)      # bit for bit
    assert len(ours.l_mass) == len(ours.r_mass) == 4 * nodes and not any(ours.l_mass)
