"""Simulated time: durations, DST-correct Amsterdam offsets, rhythm sampling."""

from __future__ import annotations

import numpy as np
import pytest

from services.devtools.simulator.exceptions import SimulatorError
from services.devtools.simulator.timeline import (
    BUSINESS,
    HOUR_MS,
    Timeline,
    local_hours,
    parse_duration,
    parse_start,
    rfc3339,
)


def test_parse_duration() -> None:
    assert parse_duration("24h") == 24 * HOUR_MS
    assert parse_duration("90m") == 90 * 60_000
    assert parse_duration("2d") == 48 * HOUR_MS
    with pytest.raises(SimulatorError):
        parse_duration("a day")


def test_offsets_follow_the_spring_dst_change() -> None:
    start = parse_start("2025-03-30T01:30:00+01:00")   # clocks jump 02:00 -> 03:00 local
    t = np.asarray([start, start + HOUR_MS], dtype=np.int64)
    assert rfc3339(t, local=True) == ["2025-03-30T01:30:00.000+01:00", "2025-03-30T03:30:00.000+02:00"]
    assert rfc3339(t, local=False) == ["2025-03-30T00:30:00.000Z", "2025-03-30T01:30:00.000Z"]
    assert local_hours(t).tolist() == [1, 3]


def test_business_rhythm_keeps_to_office_hours() -> None:
    tl = Timeline(parse_start("2025-03-04T00:00:00+01:00"), 24 * HOUR_MS)
    t = tl.sample(np.random.default_rng(0), 5000, BUSINESS)
    hours = local_hours(t)
    assert ((hours >= 7) & (hours <= 19)).all()
    assert (t >= tl.start_ms).all() and (t < tl.end_ms).all()
