"""Operations on the parts of a packed record: fingerprints, most-recently-used sets, the
distinct-count sketch and the forward-decayed counters (see ``features`` for why they decay
forward). Pure functions over the unpacked list of ``layout``'s records.
"""

from __future__ import annotations

import math

from services.scorer.layout import (
    BASE_MS,
    EVICTED,
    HEADER_LEN,
    LAST_MS,
    RCPT_CAP,
    SKETCH_WORDS,
    TAUS,
    Layout,
)


def fp32(pseudonym: str) -> int:
    """32-bit fingerprint of a pseudonym (never 0, which marks an empty slot)."""
    return int(pseudonym[:8], 16) or 1


def fp64(pseudonym: str) -> int:
    return int(pseudonym[:16], 16) or 1


def remember(values: list[float], bounds: tuple[int, int], fingerprint: int) -> bool:
    """Move ``fingerprint`` to the front of the MRU set; True when it was not in the set."""
    start, end = bounds
    recent = values[start:end]
    if fingerprint in recent:
        pos = recent.index(fingerprint)
        if pos:
            del recent[pos]
            recent.insert(0, fingerprint)
            values[start:end] = recent
        return False
    overflow = recent[-1] != 0
    recent.insert(0, fingerprint)
    values[start:end] = recent[:-1]
    if overflow and bounds[1] - bounds[0] == RCPT_CAP:
        values[EVICTED] = int(values[EVICTED]) | 1
    return True


def known(values: list[float], bounds: tuple[int, int], fingerprint: int) -> bool:
    """Is ``fingerprint`` in the set (the set unchanged)?"""
    return fingerprint in values[bounds[0]:bounds[1]]


def set_size(values: list[float], bounds: tuple[int, int]) -> int:
    start, end = bounds
    return sum(1 for v in values[start:end] if v)


def sketch_add(values: list[float], at: int, fingerprint: int) -> None:
    bit = (fingerprint >> 8) & 255
    word = at + (bit >> 6)
    values[word] = int(values[word]) | (1 << (bit & 63))


def sketch_estimate(values: list[float], at: int) -> float:
    """Linear counting over the 256-bit bitmap (saturates near 1 400 distinct)."""
    ones = sum(int(values[at + i]).bit_count() for i in range(SKETCH_WORDS))
    zeros = 256 - ones
    if zeros == 0:
        zeros = 1
    return -256.0 * math.log(zeros / 256.0)


_REBASE_MS = 40 * 300_000     # exp(40) ~ 2e17: far from overflow, still exact enough


def advance(values: list[float], layout: Layout, t_ms: int) -> tuple[float, float, float]:
    """Move the watermark to ``t_ms`` if newer; the per-window weights of an event at ``t_ms``.

    Forward decay: the weight is ``exp((t - B)/τ)`` for base time ``B``; late events simply get
    a smaller weight. When the base falls far behind, every counter is rescaled to a new base.
    """
    base = int(values[BASE_MS])
    if not base:
        values[BASE_MS] = base = t_ms
    elif t_ms - base > _REBASE_MS:
        f5, f1, f24 = decay_factors(t_ms - base)
        start, end = HEADER_LEN, layout.counters_end
        values[start:end:3] = [v * f5 for v in values[start:end:3]]
        values[start + 1:end:3] = [v * f1 for v in values[start + 1:end:3]]
        values[start + 2:end:3] = [v * f24 for v in values[start + 2:end:3]]
        values[BASE_MS] = base = t_ms
    values[LAST_MS] = max(values[LAST_MS], t_ms)
    gap = t_ms - base
    return _EXP(gap / _TAU_5M), _EXP(gap / _TAU_1H), _EXP(gap / _TAU_24H)


_EXP = math.exp
_TAU_5M, _TAU_1H, _TAU_24H = TAUS


def decay_factors(gap_ms: int) -> tuple[float, float, float]:
    return _EXP(-gap_ms / _TAU_5M), _EXP(-gap_ms / _TAU_1H), _EXP(-gap_ms / _TAU_24H)


def current(values: list[float], layout: Layout) -> list[float]:
    """A copy of ``values`` with the counters as plain decayed counts at the watermark."""
    out = list(values)
    gap = int(values[LAST_MS]) - int(values[BASE_MS])
    if gap and values[BASE_MS]:
        f5, f1, f24 = decay_factors(gap)
        start, end = HEADER_LEN, layout.counters_end
        out[start:end:3] = [v * f5 for v in out[start:end:3]]
        out[start + 1:end:3] = [v * f1 for v in out[start + 1:end:3]]
        out[start + 2:end:3] = [v * f24 for v in out[start + 2:end:3]]
    return out


def add(values: list[float], at: int, weights: tuple[float, float, float]) -> None:
    values[at] += weights[0]
    values[at + 1] += weights[1]
    values[at + 2] += weights[2]
