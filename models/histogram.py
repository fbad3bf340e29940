"""A decayed log-bucket histogram: the streaming CDF behind calibration and ECOD tails.

Values are bucketed on a logarithmic grid (relative accuracy ``gamma - 1``, as in DDSketch), so
counts from 0.001 to millions fit in a few hundred float slots. Counts decay by ``decay`` every
``decay_every`` updates, which keeps the reference population recent without timestamps (models
see plain dicts, not clocks). Cumulative counts are rebuilt lazily every ``refresh_every``
updates so that a tail query is O(1) on the hot path.

Deterministic: no randomness; a pickle round trip keeps every answer.
"""

from __future__ import annotations

import math
from array import array
from itertools import accumulate


class _LogGrid:
    """What both histograms share: the log grid of magnitudes, the decayed counts and their
    lazily rebuilt suffix sums (``_cum[k]`` = count in buckets >= k, so a tail is one index).

    A pickle holds every slot of the class and of its bases, by name in sorted order, so a
    checkpoint's bytes do not depend on which class declares a slot: ``__getstate__`` walks the
    MRO, and a slot added to a subclass or to this base is saved without touching it.
    """

    __slots__ = ("_counts", "_cum", "_log_gamma", "_log_min", "_since_decay", "_since_refresh",
                 "decay", "decay_every", "gamma", "min_value", "n_buckets", "refresh_every", "total")

    def __init__(self, min_value: float, gamma: float, n_buckets: int, *, decay: float, decay_every: int,
                 refresh_every: int, size: int) -> None:
        if not (gamma > 1.0 and min_value > 0 and n_buckets >= 4):
            raise ValueError("need gamma > 1, min_value > 0 and n_buckets >= 4")
        self.min_value = min_value
        self.gamma = gamma
        self.n_buckets = n_buckets
        self.decay = decay
        self.decay_every = decay_every
        self.refresh_every = refresh_every
        self._log_min = math.log(min_value)
        self._log_gamma = math.log(gamma)
        self._counts = array("d", bytes(8 * size))
        self._cum = array("d", bytes(8 * (size + 1)))
        self.total = 0.0
        self._since_decay = 0
        self._since_refresh = 0

    def _magnitude_bucket(self, m: float) -> int:
        """Index of the bucket holding magnitude ``m`` (0 holds zero and negatives)."""
        if m <= 0.0:
            return 0
        if m < self.min_value:
            return 1
        index = 2 + int((math.log(m) - self._log_min) / self._log_gamma)
        return index if index < self.n_buckets else self.n_buckets - 1

    def _decay_counts(self) -> None:
        """Multiply every count by ``decay``; the next update rebuilds the suffix sums."""
        self._since_decay = 0
        counts = self._counts
        for i in range(len(counts)):
            counts[i] *= self.decay
        self.total *= self.decay
        self._since_refresh = self.refresh_every

    def _refresh(self) -> None:
        self._since_refresh = 0
        # C-speed suffix sums: reversed running total, reversed back
        suffix = list(accumulate(reversed(self._counts)))
        suffix.reverse()
        suffix.append(0.0)
        self._cum = array("d", suffix)

    def __getstate__(self) -> dict[str, object]:
        names = sorted({name for cls in type(self).__mro__ for name in getattr(cls, "__slots__", ())})
        return {name: getattr(self, name) for name in names}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


class LogHistogram(_LogGrid):
    """Histogram of non-negative values on a log grid with exponential forgetting.

    Parameters
    ----------
    min_value
        Smallest positive value told apart from zero; smaller ones share bucket 1.
    gamma
        Ratio between bucket edges (1.05 means 5 % relative resolution).
    n_buckets
        Number of buckets; values above the top edge share the last bucket.
    decay, decay_every
        Every ``decay_every`` updates all counts are multiplied by ``decay`` (1.0 = no forgetting).
    refresh_every
        Updates between rebuilds of the cumulative table used by ``tail``/``cdf``.

    Examples
    --------
    >>> h = LogHistogram()
    >>> for v in range(1, 1025):  # 16 refreshes of the cumulative table
    ...     h.update(float(v))
    >>> round(h.tail(1000.0), 2)
    0.03
    >>> h.tail(0.0)
    1.0
    """

    __slots__ = ()

    def __init__(self, min_value: float = 1e-3, gamma: float = 1.05, n_buckets: int = 512, *,
                 decay: float = 0.5, decay_every: int = 1_000_000, refresh_every: int = 64) -> None:
        super().__init__(min_value, gamma, n_buckets, decay=decay, decay_every=decay_every,
                         refresh_every=refresh_every, size=n_buckets)

    # Index of the bucket holding ``value`` (0 holds zero and negatives): the grid's own index.
    bucket = _LogGrid._magnitude_bucket

    def update(self, value: float, weight: float = 1.0) -> None:
        self._counts[self.bucket(value)] += weight
        self.total += weight
        self._since_decay += 1
        self._since_refresh += 1
        if self._since_decay >= self.decay_every:
            self._decay_counts()
        if self._since_refresh >= self.refresh_every:
            self._refresh()

    def tail(self, value: float) -> float:
        """Estimated P(X >= value), smoothed so it is never 0 (one pseudo-count above the top)."""
        cum = self._cum
        if cum[0] <= 0.0 < self.total:   # never built: build once (later rebuilds follow update)
            self._refresh()
            cum = self._cum
        total = cum[0]
        if total <= 0.0:
            return 1.0
        if value <= 0.0:
            return 1.0
        b = self.bucket(value)
        own = cum[b] - cum[b + 1]
        if 2 <= b < self.n_buckets - 1:
            # interpolate inside the bucket on the log scale (values spread evenly in log)
            position = (math.log(value) - self._log_min) / self._log_gamma - (b - 2)
            above = cum[b + 1] + (1.0 - position) * own
        else:
            above = cum[b + 1] + 0.5 * own
        return (above + 0.5) / (total + 1.0)

    def cdf(self, value: float) -> float:
        return 1.0 - self.tail(value)

    def quantile(self, q: float) -> float:
        """Approximate value at quantile ``q`` (upper edge of the bucket reaching it)."""
        if self._cum[0] <= 0.0 < self.total:
            self._refresh()
        total = self._cum[0]
        if total <= 0.0:
            return 0.0
        target = (1.0 - q) * total
        for i in range(self.n_buckets - 1, -1, -1):
            if self._cum[i] >= target:
                if i == 0:
                    return 0.0
                if i == 1:
                    return self.min_value
                return math.exp(self._log_min + (i - 1) * self._log_gamma)
        return 0.0

    def value_at_tail(self, alpha: float) -> float:
        """The value whose ``tail`` is ``alpha`` (inverse of ``tail``, interpolated like it): the
        cut above which a share ``alpha`` of the learned values lies. At least as large as the top
        bucket's lower edge when ``alpha`` is below what the counts can resolve."""
        if self._cum[0] <= 0.0 < self.total:
            self._refresh()
        cum = self._cum
        target = alpha * (cum[0] + 1.0) - 0.5          # tail() = (above + 0.5) / (total + 1)
        top = self.n_buckets - 1
        if target <= cum[top]:
            return math.exp(self._log_min + (top - 2) * self._log_gamma)
        for i in range(top - 1, -1, -1):
            if cum[i] >= target:
                if i == 0:
                    return 0.0
                if i == 1:
                    return self.min_value
                own = cum[i] - cum[i + 1]
                position = 1.0 - (target - cum[i + 1]) / own if own > 0.0 else 1.0
                return math.exp(self._log_min + (i - 2 + position) * self._log_gamma)
        return 0.0

class SignedLogHistogram(_LogGrid):
    """Histogram of signed values: ``LogHistogram``'s grid mirrored around an exact-zero bucket.

    Bucket ``k`` of ``2 * n_buckets - 1`` runs from the most negative values (0) through zero
    (``n_buckets - 1``) to the most positive (``2 * n_buckets - 2``), so one suffix-sum table
    answers both tails: ``right(v)`` ~ P(X >= v) and ``left(v)`` ~ P(X <= v), each smoothed never
    to be 0 and each counting ties (as an empirical CDF does, so a point mass at 0 is in both).
    Magnitudes get ``LogHistogram``'s resolution (``gamma``), whatever the sign. A NaN is not
    a value: ``update`` ignores it. Counts decay by ``decay`` every ``decay_every`` updates, both
    signs together. On non-negative data, ``right`` equals ``LogHistogram.tail`` on the same grid.

    Examples
    --------
    >>> h = SignedLogHistogram()
    >>> for v in range(-512, 513):
    ...     h.update(float(v))
    >>> round(h.right(400.0), 2), round(h.left(-400.0), 2), round(h.left(0.0), 2)
    (0.11, 0.11, 0.5)
    """

    __slots__ = ("_skew", "_skew_at", "n_updates")

    def __init__(self, min_value: float = 1e-3, gamma: float = 1.05, n_buckets: int = 512, *,
                 decay: float = 0.5, decay_every: int = 1_000_000, refresh_every: int = 64) -> None:
        super().__init__(min_value, gamma, n_buckets, decay=decay, decay_every=decay_every,
                         refresh_every=refresh_every, size=2 * n_buckets - 1)
        self.n_updates = 0
        self._skew = 0.0
        self._skew_at = -1

    def bucket(self, value: float) -> int:
        zero = self.n_buckets - 1
        if value > 0.0:
            return zero + self._magnitude_bucket(value)
        if value < 0.0:
            return zero - self._magnitude_bucket(-value)
        return zero

    def update(self, value: float, weight: float = 1.0) -> None:
        if math.isnan(value):
            return
        self._counts[self.bucket(value)] += weight
        self.total += weight
        self.n_updates += 1
        self._since_decay += 1
        self._since_refresh += 1
        if self._since_decay >= self.decay_every:
            self._decay_counts()
        if self._since_refresh >= self.refresh_every:
            self._refresh()

    def _position(self, value: float, k: int) -> float | None:
        """Where ``value`` sits inside its bucket, 0 at the bucket's lower value end, 1 at its
        upper; ``None`` for a bucket without a log grid (zero, sub-``min_value``, the top)."""
        zero = self.n_buckets - 1
        b = k - zero if k >= zero else zero - k
        if not 2 <= b < self.n_buckets - 1:
            return None
        inside = (math.log(abs(value)) - self._log_min) / self._log_gamma - (b - 2)
        return inside if value > 0.0 else 1.0 - inside

    def _counts_around(self, value: float) -> tuple[float, float, float, float]:
        """(total, count in the buckets above ``value``'s, that bucket's own count, ``value``'s
        position in it: 0..1 on the grid, 0.5 off it, -1 for the exact-zero bucket)."""
        cum = self._cum
        if cum[0] <= 0.0 < self.total:   # never built: build once (later rebuilds follow update)
            self._refresh()
            cum = self._cum
        k = self.bucket(value)
        own = cum[k] - cum[k + 1]
        position = self._position(value, k)
        if position is None:
            # the exact-zero bucket is a tie both ways (-1: ``left``/``right`` count it whole);
            # the sub-``min_value`` and top buckets have no grid: half of them on each side
            position = -1.0 if k == self.n_buckets - 1 else 0.5
        return cum[0], cum[k + 1], own, position

    def right(self, value: float) -> float:
        """Estimated P(X >= value), smoothed (one pseudo-count), never 0."""
        total, above, own, position = self._counts_around(value)
        if total <= 0.0:
            return 1.0
        share = 1.0 if position < 0.0 else 1.0 - position
        return (above + share * own + 0.5) / (total + 1.0)

    def left(self, value: float) -> float:
        """Estimated P(X <= value), smoothed (one pseudo-count), never 0."""
        total, above, own, position = self._counts_around(value)
        if total <= 0.0:
            return 1.0
        share = 1.0 if position < 0.0 else position
        return (total - above - own + share * own + 0.5) / (total + 1.0)

    def both(self, value: float) -> tuple[float, float]:
        """(``left(value)``, ``right(value)``) from one bucket lookup."""
        total, above, own, position = self._counts_around(value)
        if total <= 0.0:
            return 1.0, 1.0
        if position < 0.0:
            return (total - above + 0.5) / (total + 1.0), (above + own + 0.5) / (total + 1.0)
        return ((total - above - own + position * own + 0.5) / (total + 1.0),
                (above + (1.0 - position) * own + 0.5) / (total + 1.0))

    def skewness(self) -> float:
        """Sample skewness of the learned values, from the buckets' representative values;
        recomputed every ``refresh_every`` updates (0 until there is a spread)."""
        if self._skew_at >= 0 and self.n_updates - self._skew_at < self.refresh_every:
            return self._skew
        self._skew_at = self.n_updates
        zero = top = self.n_buckets - 1     # the zero bucket's index; the top magnitude bucket's b
        n = s1 = s2 = s3 = 0.0
        reps: list[tuple[float, float]] = []
        for k, c in enumerate(self._counts):
            if c <= 0.0:
                continue
            b = k - zero if k >= zero else zero - k
            if b == 0:
                m = 0.0
            elif b == 1:
                m = 0.5 * self.min_value
            else:
                m = math.exp(self._log_min + (b - 2 + (1.0 if b == top else 0.5)) * self._log_gamma)
            v = m if k >= zero else -m
            reps.append((v, c))
            n += c
            s1 += c * v
        if n <= 0.0:
            self._skew = 0.0
            return 0.0
        mean = s1 / n
        for v, c in reps:
            d = v - mean
            s2 += c * d * d
            s3 += c * d * d * d
        m2, m3 = s2 / n, s3 / n
        self._skew = m3 / m2 ** 1.5 if m2 > 0.0 else 0.0
        return self._skew

    @classmethod
    def from_log_histogram(cls, old: LogHistogram) -> SignedLogHistogram:
        """The same counts on the signed grid (``LogHistogram``'s bucket 0, zero and below, goes
        to the zero bucket): how a checkpoint of the right-tail-only ECOD is carried over."""
        new = cls(old.min_value, old.gamma, old.n_buckets, decay=old.decay, decay_every=old.decay_every,
                  refresh_every=old.refresh_every)
        zero = new.n_buckets - 1
        for b in range(old.n_buckets):
            new._counts[zero + b] = old._counts[b]
        new.total = old.total
        new._since_decay = old._since_decay
        new._refresh()
        return new
