"""The baseline: River's Half-Space Trees on log-scaled, min-max-scaled features.

Counts span orders of magnitude (1 SMS an hour vs 5 000), so features go through a signed
``log1p`` (``sign(v) * log1p(|v|)``: a balance change of -500 stays far below one of +3) before a
running min-max scaling (River's ``MinMaxScaler`` semantics, in two flat dicts) maps them into
[0, 1], the domain HST's random splits assume. A missing value (key absent or NaN) is missing:
it does not move the scaler, and a tree walk meeting a split on it follows the busier child
(River's rule for an absent key), never "0". The feature space is the declared ``features`` list
when one is given (a feature absent from the first point is still split on); without one it is
the first point's keys, as in River.
Settings follow the measurements in the project notes: 10 trees of height 8, never 25x15.
The trees are River's, held flat and walked in C (``_hstcore.c``) when it is built.

Known weakness, measured in docs/detection.md: anomalies that arrive in bursts fill HST's
reference window (``window_size`` points) and stop looking rare.
"""

from __future__ import annotations

import math
import random
from array import array
from bisect import bisect as _bisect
from collections.abc import Callable, Sequence
from itertools import accumulate as _accumulate
from typing import Any

from river.tree.padded import PaddedBranch


class ScaledHalfSpaceTrees:
    """``log1p`` → min-max scaling → River's Half-Space Trees, with River's ``learn_one``/``score_one``.

    The trees are River's: built as ``river.tree.padded.make_padded_tree`` builds them, from the
    same seeded generator ``river.anomaly.HalfSpaceTrees`` uses, on the declared ``features``
    (River's ``limits``) or else on the first point's features, so a seed gives River's trees.
    They are held flat (split feature, threshold and the two masses per node, in arrays) and
    walked exactly as River walks them — by ``_hstcore.c`` when it is built, else by
    ``_walk_python``: same paths, same masses, same scores as ``river.anomaly.HalfSpaceTrees`` on
    the scaled features (tests/models/test_hst.py compares the three).

    Parameters
    ----------
    n_trees, height, window_size
        As ``river.anomaly.HalfSpaceTrees``.
    seed
        Seed of the random tree structure (same seed, same stream: same scores).
    features
        The feature space (the trees are built on it at construction). ``None``: the keys of the
        first point learned, as ``river.anomaly.HalfSpaceTrees`` does.

    Examples
    --------
    >>> model = ScaledHalfSpaceTrees(window_size=50, seed=1)
    >>> for i in range(200):
    ...     model.learn_one({"sms_out_1h": float(i % 4), "new_recipients_1h": 1.0})
    >>> model.score_one({"sms_out_1h": 2.0, "new_recipients_1h": 1.0}) < model.score_one(
    ...     {"sms_out_1h": 900.0, "new_recipients_1h": 800.0})
    True
    """

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 1000, seed: int | None = 0,
                 features: Sequence[str] | None = None) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        # running min/max of the log1p'd features (River's MinMaxScaler semantics, in two flat
        # dicts the compiled walk reads directly; docs/scorer.md "Measured" has what it saved)
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}
        # the trees, flat (built at the first learn_one): node i of a tree has children 2i+1, 2i+2
        self.names: tuple[str, ...] = ()          # the features the trees split on
        self.split = array("i")                   # per branch: index into names
        self.threshold = array("d")               # per branch: split point (scaled space)
        self.l_mass = array("q")                  # per node: mass of the window being filled
        self.r_mass = array("q")                  # per node: mass of the reference window
        self.counter = 0                          # points learned in the current window
        self.first_window = True                  # no reference window yet: scores are 0
        self.n_learned = 0
        self.features: tuple[str, ...] | None = tuple(sorted(set(features))) if features else None
        if self.features:
            self._build(self.features)

    @property
    def branches(self) -> int:
        return (1 << self.height) - 1

    @property
    def max_score(self) -> int:
        """The largest potential raw score (River's ``_max_score``)."""
        return self.n_trees * self.window_size * ((1 << (self.height + 1)) - 1)

    def learn_one(self, x: dict[str, float]) -> None:
        self.n_learned += 1
        if not self.names:
            _update_scaler(x, self.lo, self.hi)
            if not x:
                return          # nothing to build trees on yet (River's HST would fail here)
            self._build(sorted(x))
        self._walk(True, x)     # the scaler (again: min/max updates are idempotent), then the trees
        self.counter += 1
        if self.counter == self.window_size:     # pivot: the window just filled becomes the reference
            self.r_mass = self.l_mass
            self.l_mass = array("q", bytes(len(self.r_mass) * self.l_mass.itemsize))
            self.first_window = False
            self.counter = 0

    def score_one(self, x: dict[str, float]) -> float:
        """HST anomaly score in [0, 1] (0 during HST's first window)."""
        if self.first_window:
            return 0.0
        return float(1 - self._walk(False, x) / self.max_score)

    def _build(self, feature_names: Sequence[str]) -> None:
        """River's trees for this seed, built straight into the flat arrays.

        ``river.tree.padded.make_padded_tree`` (called by ``river.anomaly.HalfSpaceTrees`` on its
        first point with the limits (0, 1) per feature, in sorted order), step for step: the same
        draws from the same generator in the same order, so the same splits and thresholds bit
        for bit (tests/models/test_hst.py compares both builders) — without a node object and a
        kwargs dict per node and without the flattening pass, ~5x faster (40 → 7 ms for ten
        trees; a fresh model builds them on its first point, a scorer 20 per partition at start).
        """
        rng = random.Random(self.seed)           # as river.anomaly.HalfSpaceTrees seeds its trees
        draw = rng.random
        names = sorted(feature_names)
        n = len(names)
        height, branches, padding = self.height, self.branches, 0.15
        split = [0] * (self.n_trees * branches)
        threshold = [0.0] * (self.n_trees * branches)
        low, high = [0.0] * n, [1.0] * n

        def grow(base: int, i: int, depth: int) -> None:
            # random.Random.choices(population, weights)[0] and .uniform(a, b), inlined
            cum = list(_accumulate([high[k] - low[k] for k in range(n)]))
            on = _bisect(cum, draw() * (cum[-1] + 0.0), 0, n - 1)
            a, b = low[on], high[on]
            first, last = a + padding * (b - a), b - padding * (b - a)
            at = first + (last - first) * draw()
            split[base + i] = on
            threshold[base + i] = at
            if depth + 1 < height:
                high[on] = at
                grow(base, 2 * i + 1, depth + 1)
                high[on], low[on] = b, at
                grow(base, 2 * i + 2, depth + 1)
                low[on] = a

        for t in range(self.n_trees):
            grow(t * branches, 0, 0)
        used = sorted(set(split))
        remap = {k: j for j, k in enumerate(used)}
        self.names = tuple(names[k] for k in used)
        self.split = array("i", [remap[k] for k in split])
        self.threshold = array("d", threshold)
        self.l_mass = array("q", bytes(self.n_trees * (2 * branches + 1) * 8))
        self.r_mass = array("q", bytes(self.n_trees * (2 * branches + 1) * 8))

    def _flatten(self, trees: list[PaddedBranch], l_mass: list[list[int]], r_mass: list[list[int]]) -> None:
        features: set[str] = set()

        def collect(node: Any, depth: int) -> None:
            if depth < self.height:
                features.add(node.feature)
                collect(node.children[0], depth + 1)
                collect(node.children[1], depth + 1)

        for tree in trees:
            collect(tree, 0)
        self.names = tuple(sorted(features))
        index = {name: i for i, name in enumerate(self.names)}
        split = [0] * (self.n_trees * self.branches)
        threshold = [0.0] * (self.n_trees * self.branches)

        def fill(node: Any, t: int, i: int, depth: int) -> None:
            if depth < self.height:
                split[t * self.branches + i] = index[node.feature]
                threshold[t * self.branches + i] = node.threshold
                fill(node.children[0], t, 2 * i + 1, depth + 1)
                fill(node.children[1], t, 2 * i + 2, depth + 1)

        for t, tree in enumerate(trees):
            fill(tree, t, 0, 0)
        self.split = array("i", split)
        self.threshold = array("d", threshold)
        self.l_mass = array("q", [m for tree in l_mass for m in tree])
        self.r_mass = array("q", [m for tree in r_mass for m in tree])

    def _walk(self, learn: bool, x: dict[str, float]) -> float:
        args = (learn, x, self.names, self.lo, self.hi, self.split, self.threshold, self.l_mass, self.r_mass,
                self.n_trees, self.height, 0.1 * self.window_size)
        if COMPILED_WALK is not None:
            result = COMPILED_WALK(*args)
            if result is not None:
                return result
        return _walk_python(*args)

    def contributions_one(self, x: dict[str, float]) -> dict[str, float]:
        """Which features made ``x`` rare: per feature, the mass the trees' splits on it cut away.

        Along each tree's scoring path (the reference window's masses, down to where River's
        scoring stops), a split that sends ``x`` from a node of mass ``r`` to a child of mass
        ``r'`` isolated it by ``log2((r + 1) / (r' + 1))`` bits; that is added to the split's
        feature, and the sums are averaged over the trees. A point in a sparse region loses its
        mass on the splits of the features where it is unusual. Missing features (absent, NaN) are
        never credited (the walk follows the busier child there). Empty during the first window.
        """
        if self.first_window or not self.names:
            return {}
        names = self.names
        values = _scaled_values(x, names, self.lo, self.hi)
        split, threshold, r_mass = self.split, self.threshold, self.r_mass
        l_mass = self.l_mass
        branches, nodes = self.branches, 2 * self.branches + 1
        size_limit = 0.1 * self.window_size
        bits = [0.0] * len(names)
        for t in range(self.n_trees):
            sp, mp = t * branches, t * nodes
            node = 0
            for _ in range(self.height):
                r = r_mass[mp + node]
                if r < size_limit:
                    break
                f = split[sp + node]
                value = values[f]
                left = 2 * node + 1
                if value is None:
                    node = left + 1 if l_mass[mp + left] < l_mass[mp + left + 1] else left
                    continue
                node = left if value < threshold[sp + node] else left + 1
                bits[f] += math.log2((r + 1) / (r_mass[mp + node] + 1))
        return {name: b / self.n_trees for name, b in zip(names, bits, strict=True) if b > 0.0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # checkpoints written before the trees were flat hold a river HalfSpaceTrees in "trees";
        # ones written before the declared feature space have no "features" (their trees were
        # built on the first point). Both load: the scaled space of non-negative values is the
        # same (signed log1p = log1p there); a negative value, which those clipped to 0, now
        # scales below 0 and extends the running minimum as it is learned.
        state.setdefault("features", None)
        river_trees = state.pop("trees", None)
        self.__dict__.update(state)
        if river_trees is not None:
            self.names, self.split, self.threshold = (), array("i"), array("d")
            self.l_mass, self.r_mass = array("q"), array("q")
            self.counter = river_trees.counter
            self.first_window = river_trees._first_window
            if river_trees.trees:
                masses = [_masses(tree, self.height) for tree in river_trees.trees]
                self._flatten(river_trees.trees, [m[0] for m in masses], [m[1] for m in masses])


def _masses(tree: Any, height: int) -> tuple[list[int], list[int]]:
    """(l_mass, r_mass) of a river padded tree's nodes, heap-ordered."""
    size = (1 << (height + 1)) - 1
    l_mass, r_mass = [0] * size, [0] * size

    def visit(node: Any, i: int, depth: int) -> None:
        l_mass[i], r_mass[i] = node.l_mass, node.r_mass
        if depth < height:
            visit(node.children[0], 2 * i + 1, depth + 1)
            visit(node.children[1], 2 * i + 2, depth + 1)

    visit(tree, 0, 0)
    return l_mass, r_mass


def _walk_python(learn: bool, x: dict[str, float], names: tuple[str, ...], lo: dict[str, float],  # noqa: PLR0917 - _hstcore.walk's signature
                 hi: dict[str, float], split: array[int], threshold: array[float], l_mass: array[int],
                 r_mass: array[int], n_trees: int, height: int, size_limit: float) -> float:
    """Learn (update the scaler with every feature of ``x``, then add 1 to ``l_mass`` along each
    tree's path; returns 0.0) or score (River's sum of ``r_mass * 2**depth`` along the paths,
    stopping below ``size_limit``) one point.

    The reference for ``_hstcore.walk``: River's ``_walk_learn``/``_walk_score`` on flat trees,
    the features scaled by ``_scaled_values`` (signed log1p, min-max into [0, 1] — HST's splits
    live there; a missing value, absent or NaN, follows the busier child).
    """
    if learn:
        _update_scaler(x, lo, hi)
    values = _scaled_values(x, names, lo, hi)
    branches = (1 << height) - 1
    nodes = 2 * branches + 1
    total = 0.0
    for t in range(n_trees):
        sp, mp = t * branches, t * nodes
        node = 0
        score = 0.0
        depth_pow = 1
        for _ in range(height):
            if learn:
                l_mass[mp + node] += 1                  # River's _walk_learn
            else:
                r = r_mass[mp + node]                   # River's _walk_score
                score += r * depth_pow
                if r < size_limit:
                    break
            value = values[split[sp + node]]
            left = 2 * node + 1
            if value is None:                           # missing: the busier child
                node = left + 1 if l_mass[mp + left] < l_mass[mp + left + 1] else left
            else:
                node = left if value < threshold[sp + node] else left + 1
            depth_pow <<= 1
        else:                                           # reached a leaf
            if learn:
                l_mass[mp + node] += 1
            else:
                score += r_mass[mp + node] * depth_pow
        total += score
    return total


def _scaled_values(x: dict[str, float], names: tuple[str, ...], lo: dict[str, float],
                   hi: dict[str, float]) -> list[float | None]:
    """Per name: signed log1p, min-max scaled into [0, 1] (0 while the scaler has no span);
    ``None`` for a missing value (absent or NaN)."""
    values: list[float | None] = []
    for name in names:
        value = x.get(name)
        if value is None or _isnan(value):      # absent or NaN: missing
            values.append(None)
            continue
        z = _log1p(value) if value > 0.0 else (-_log1p(-value) if value < 0.0 else 0.0)
        low = lo.get(name)
        if low is None:
            values.append(0.0)
            continue
        span = hi[name] - low
        if not span:
            values.append(0.0)
            continue
        z = (z - low) / span
        values.append(1.0 if z > 1.0 else (0.0 if z < 0.0 else z))
    return values


def _update_scaler(x: dict[str, float], lo: dict[str, float], hi: dict[str, float]) -> None:
    """Running min/max of the signed-log1p'd features (River's ``MinMaxScaler`` semantics, two flat
    dicts); missing values (NaN) leave it alone."""
    for name, value in x.items():
        if _isnan(value):
            continue
        z = _log1p(value) if value > 0.0 else (-_log1p(-value) if value < 0.0 else 0.0)
        low = lo.get(name)
        if low is None:
            lo[name] = hi[name] = z
        elif z < low:
            lo[name] = z
        elif z > hi[name]:
            hi[name] = z


def _compiled() -> Callable[..., float | None] | None:
    """``_hstcore.walk`` when built and not switched off by ``FRAUDRADAR_PURE_PYTHON=1``."""
    import os

    if os.environ.get("FRAUDRADAR_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from models import _hstcore  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _hstcore.walk  # type: ignore[no-any-return]


COMPILED_WALK = _compiled()
_log1p = math.log1p
_isnan = math.isnan
