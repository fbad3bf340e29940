"""Regressions found by the reliability suite (docs/reliability.md): valid but odd views."""

from __future__ import annotations

import pytest

from services.common.pseudonym import Key, Pseudonymizer
from services.scorer.partition import PartitionScorer
from tests.scorer.helpers import pid, sim_change, sms_out

YEAR_1_MS = -62_135_596_800_000       # 0001-01-01T00:00:00Z: RFC 3339-valid, forwarded late by ingest
YEAR_1900_MS = -2_208_988_800_000


@pytest.mark.parametrize("t_ms", [YEAR_1_MS, YEAR_1900_MS, -1])
def test_events_before_1970_are_scored_not_a_crash(t_ms: int) -> None:
    # the packed state keeps event seconds as uint32: an event before 1970 must not raise
    # struct.error, which would crash-loop the scorer on the same record
    engine = PartitionScorer.default(Pseudonymizer(Key("k", b"k" * 32)))
    out = engine.process(sms_out(pid("a"), pid("b"), t_ms), offset=1)
    assert not out.skipped
    out = engine.process(sim_change(pid("a"), t_ms), offset=2)
    assert not out.skipped
    assert engine.state.entities()["number"] == 1


@pytest.mark.parametrize("tac", ["12345678901", "99999999999999999999", "4294967296"])
def test_a_digit_string_too_long_for_a_tac_is_ignored_not_a_crash(tac: str) -> None:
    # ingest takes TACs from IMEIs (8 digits); a longer digit string on an internal topic used
    # to pass str.isdigit() and then fail to pack the record (struct.error) on every replay
    from services.common.records import View
    from services.scorer import layout as L
    from services.scorer.state import entity_key

    engine = PartitionScorer.default(Pseudonymizer(Key("k", b"k" * 32)))
    base = sms_out(pid("a"), pid("b"), 1_790_000_000_000)
    engine.process(View(**{**{f: getattr(base, f) for f in base.__struct_fields__}, "tac": "35693803"}), offset=1)
    odd = View(**{**{f: getattr(base, f) for f in base.__struct_fields__}, "tac": tac, "view_id": "odd"})
    assert not engine.process(odd, offset=2).skipped
    record = L.NUMBER.unpack(engine.store.numbers.records[entity_key(pid("a"))])
    assert record[L.TAC] == 35693803          # the earlier, real TAC stays
