"""Regressions found by the reliability suite (docs/reliability.md): valid but odd views."""

from __future__ import annotations

import pytest

from services.common.pseudonym import Key, Pseudonymizer
from services.scorer.engine import ScoringEngine
from tests.scorer.helpers import pid, sim_change, sms_out

YEAR_1_MS = -62_135_596_800_000       # 0001-01-01T00:00:00Z: RFC 3339-valid, forwarded late by ingest
YEAR_1900_MS = -2_208_988_800_000


@pytest.mark.parametrize("t_ms", [YEAR_1_MS, YEAR_1900_MS, -1])
def test_events_before_1970_are_scored_not_a_crash(t_ms: int) -> None:
    # the packed state keeps event seconds as uint32: this used to raise struct.error and
    # crash-loop the scorer on the same record
    engine = ScoringEngine.default(Pseudonymizer(Key("k", b"k" * 32)))
    out = engine.process(sms_out(pid("a"), pid("b"), t_ms), offset=1)
    assert not out.skipped
    out = engine.process(sim_change(pid("a"), t_ms), offset=2)
    assert not out.skipped
    assert engine.entities()["number"] == 1
