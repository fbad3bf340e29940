"""Simulated time: run window, daily rhythms and RFC 3339 rendering.

Times are epoch milliseconds (UTC) in ``int64`` arrays. Daily rhythms are given as weights per
local (Europe/Amsterdam) hour; ``Timeline.sample`` draws event times from such a rhythm at
minute resolution, vectorised, so a million events cost a few milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from services.devtools.simulator.exceptions import SimulatorError

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
DEFAULT_START = "2025-03-04T08:00:00+01:00"  # a Tuesday morning, before the spring DST change

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# Weights per local hour 0..23.
SOCIAL = (0.12, 0.06, 0.04, 0.03, 0.04, 0.10, 0.30, 0.62, 0.90, 0.95, 1.00, 1.02, 1.08, 1.00, 0.98, 1.00,
          1.05, 1.12, 1.18, 1.15, 1.08, 0.92, 0.62, 0.32)
BUSINESS = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.6, 1.0, 1.0, 1.0, 0.8, 0.95, 1.0, 1.0, 0.95, 0.7, 0.25,
            0.05, 0.0, 0.0, 0.0, 0.0)
EVENING = (0.30, 0.12, 0.04, 0.02, 0.02, 0.05, 0.15, 0.35, 0.45, 0.45, 0.50, 0.60, 0.75, 0.60, 0.55, 0.60,
           0.75, 0.95, 1.10, 1.25, 1.30, 1.20, 0.90, 0.60)
FLAT = (1.0,) * 24

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_MS = {"s": 1000, "m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}


def parse_duration(text: str) -> int:
    """``"24h"``, ``"90m"``, ``"2d"``, ``"3600s"`` → milliseconds."""
    match = _DURATION.match(text)
    if not match:
        raise SimulatorError(f"duration {text!r}: use a number with s, m, h or d (e.g. 24h)")
    ms = int(float(match.group(1)) * _UNIT_MS[match.group(2)])
    if ms < MINUTE_MS:
        raise SimulatorError(f"duration {text!r} is shorter than a minute")
    return ms


def parse_warmup(text: str) -> int:
    """A warm-up length: ``"0"`` (none) or a duration as ``parse_duration`` reads it."""
    return 0 if text.strip() == "0" else parse_duration(text)


def parse_start(text: str) -> int:
    """An RFC 3339 time with offset (or ``Z``) → epoch ms."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SimulatorError(f"start {text!r} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise SimulatorError(f"start {text!r} needs an offset or Z")
    return int(moment.timestamp() * 1000)


def _hour_offsets_s(first_ms: int, last_ms: int) -> tuple[int, list[int]]:
    """Amsterdam UTC offset (seconds) for each whole UTC hour between two instants."""
    first_hour = first_ms // HOUR_MS
    last_hour = last_ms // HOUR_MS
    offsets = []
    for hour in range(first_hour, last_hour + 1):
        moment = datetime.fromtimestamp(hour * 3600, tz=UTC).astimezone(AMSTERDAM)
        offset = moment.utcoffset()
        offsets.append(int(offset.total_seconds()) if offset is not None else 0)
    return first_hour, offsets


def local_hours(t_ms: I64) -> npt.NDArray[np.int64]:
    """The Amsterdam local hour (0..23) of each instant."""
    if t_ms.size == 0:
        return np.zeros(0, dtype=np.int64)
    first_hour, offsets = _hour_offsets_s(int(t_ms.min()), int(t_ms.max()))
    off = np.asarray(offsets, dtype=np.int64)[t_ms // HOUR_MS - first_hour]
    return ((t_ms // 1000 + off) // 3600) % 24


def rfc3339(t_ms: I64, local: bool) -> list[str]:
    """Render instants as RFC 3339 with millisecond precision, ``Z`` or the Amsterdam offset."""
    if t_ms.size == 0:
        return []
    if not local:
        text = np.datetime_as_string(t_ms.astype("datetime64[ms]"), unit="ms")
        return [s + "Z" for s in text.tolist()]
    first_hour, offsets = _hour_offsets_s(int(t_ms.min()), int(t_ms.max()))
    off_s = np.asarray(offsets, dtype=np.int64)[t_ms // HOUR_MS - first_hour]
    text = np.datetime_as_string((t_ms + off_s * 1000).astype("datetime64[ms]"), unit="ms")
    suffix = {o: f"{'+' if o >= 0 else '-'}{abs(o) // 3600:02d}:{abs(o) % 3600 // 60:02d}" for o in set(offsets)}
    return [s + suffix[o] for s, o in zip(text.tolist(), off_s.tolist(), strict=True)]


def iso(t_ms: int) -> str:
    """One instant as RFC 3339 UTC (truth files, reports)."""
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Timeline:
    """The simulated run window [start_ms, end_ms) and rhythm sampling over it."""

    start_ms: int
    duration_ms: int
    _minute_hours: npt.NDArray[np.int64] = field(init=False, repr=False)
    _minute_weekend: npt.NDArray[np.bool_] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        minutes = np.arange(self.start_ms, self.end_ms, MINUTE_MS, dtype=np.int64)
        self._minute_hours = local_hours(minutes)
        first_hour, offsets = _hour_offsets_s(self.start_ms, self.end_ms)
        off = np.asarray(offsets, dtype=np.int64)[minutes // HOUR_MS - first_hour]
        local_days = (minutes // 1000 + off) // 86400
        self._minute_weekend = ((local_days + 3) % 7) >= 5  # 1970-01-01 was a Thursday

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms

    @property
    def days(self) -> float:
        return self.duration_ms / DAY_MS

    def minute_weights(self, rhythm: tuple[float, ...], weekend_factor: float = 1.0) -> F64:
        weights = np.asarray(rhythm, dtype=np.float64)[self._minute_hours]
        if weekend_factor != 1.0:
            weights = np.where(self._minute_weekend, weights * weekend_factor, weights)
        return weights

    def sample(self, rng: np.random.Generator, n: int, rhythm: tuple[float, ...] = SOCIAL,
               lo_ms: int | None = None, hi_ms: int | None = None, *, weekend_factor: float = 1.0) -> I64:
        """``n`` instants in [lo, hi) distributed like ``rhythm`` (falls back to flat if it is zero there)."""
        lo = self.start_ms if lo_ms is None else max(lo_ms, self.start_ms)
        hi = self.end_ms if hi_ms is None else min(hi_ms, self.end_ms)
        if n <= 0 or hi <= lo:
            return np.zeros(0, dtype=np.int64)
        first = (lo - self.start_ms) // MINUTE_MS
        last = max(first + 1, -(-(hi - self.start_ms) // MINUTE_MS))
        weights = self.minute_weights(rhythm, weekend_factor)[first:last]
        if weights.sum() <= 0:
            weights = np.ones_like(weights)
        cdf = np.cumsum(weights)
        minute = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
        minute = np.minimum(minute, len(cdf) - 1)
        t = self.start_ms + (first + minute) * MINUTE_MS + rng.integers(0, MINUTE_MS, n)
        clipped: I64 = np.clip(t, lo, hi - 1).astype(np.int64)
        return clipped

    def window(self, rng: np.random.Generator, length_ms: int, earliest: float = 0.05, latest: float = 0.75,
               ) -> tuple[int, int]:
        """A fraud window of about ``length_ms`` starting in [earliest, latest] of the run, clipped to it."""
        start = self.start_ms + int(self.duration_ms * rng.uniform(earliest, latest))
        start -= start % 1000
        return start, min(self.end_ms, start + length_ms)



def rhythm_days(timeline: Timeline, rhythm: tuple[float, ...], weekend_factor: float = 1.0) -> float:
    """How many "average days" of a rhythm the run covers (a 6 h night run covers little business).

    A rate given per day times this factor is the expected count over the run.
    """
    per_day = sum(rhythm) * 60.0
    return float(timeline.minute_weights(rhythm, weekend_factor).sum()) / per_day if per_day else 0.0
