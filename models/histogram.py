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


class LogHistogram:
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

    __slots__ = ("_counts", "_cum", "_log_gamma", "_log_min", "_since_decay", "_since_refresh",
                 "decay", "decay_every", "gamma", "min_value", "n_buckets", "refresh_every", "total")

    def __init__(self, min_value: float = 1e-3, gamma: float = 1.05, n_buckets: int = 512, *,
                 decay: float = 0.5, decay_every: int = 1_000_000, refresh_every: int = 64) -> None:
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
        self._counts = array("d", bytes(8 * n_buckets))
        # _cum[i] = total count in buckets >= i (so tail lookups are one index)
        self._cum = array("d", bytes(8 * (n_buckets + 1)))
        self.total = 0.0
        self._since_decay = 0
        self._since_refresh = 0

    def bucket(self, value: float) -> int:
        """Index of the bucket holding ``value`` (0 holds zero and negatives)."""
        if value <= 0.0:
            return 0
        if value < self.min_value:
            return 1
        index = 2 + int((math.log(value) - self._log_min) / self._log_gamma)
        return index if index < self.n_buckets else self.n_buckets - 1

    def update(self, value: float, weight: float = 1.0) -> None:
        self._counts[self.bucket(value)] += weight
        self.total += weight
        self._since_decay += 1
        self._since_refresh += 1
        if self._since_decay >= self.decay_every:
            self._since_decay = 0
            counts = self._counts
            for i in range(self.n_buckets):
                counts[i] *= self.decay
            self.total *= self.decay
            self._since_refresh = self.refresh_every
        if self._since_refresh >= self.refresh_every:
            self._refresh()

    def _refresh(self) -> None:
        self._since_refresh = 0
        # C-speed suffix sums: reversed running total, reversed back
        suffix = list(accumulate(reversed(self._counts)))
        suffix.reverse()
        suffix.append(0.0)
        self._cum = array("d", suffix)

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

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
