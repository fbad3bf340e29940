"""The quick subset of ``make reliability``: every scenario at a small scale, its own broker.

The full run (``make reliability``) replays 1M events with 20 kills and 4 freezes; here 12k events,
2 kills and 1 freeze, 3k malformed events, a short schemathesis run and a 700-number enumeration sweep.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reliability.cli import SCENARIOS, run
from reliability.context import Params
from reliability.hostile import Corpus


def test_corpus_is_labelled_by_the_contract() -> None:
    """Every hostile case gets exactly its expected reason from the ingest pipeline (no broker)."""
    import time

    from services.common.pseudonym import Key, Pseudonymizer
    from services.ingest.pipeline import IngestPipeline
    from services.ingest.transform import Transformer

    pipeline = IngestPipeline(Transformer(Pseudonymizer(Key("k", b"k" * 32)), None))
    corpus = Corpus(seed=3)
    now = int(time.time() * 1000)
    wrong = []
    for case in corpus.hostile(3000) + corpus.edge_valid(300):
        result = pipeline.process(case.raw, now)
        if result.reason != case.reason:
            wrong.append((case.family, case.reason, result.reason))
        pipeline.duplicates = type(pipeline.duplicates)(1000)
    assert wrong == []


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_quick_subset(tmp_path: Path) -> None:
    params = Params(events=12_000, kills=2, freezes=1, hostile=3_000, valid=6_000, broker_events=3_000, broker_kills=1,
                    enumeration=700, schemathesis_examples=5, lookups=30, timeout_s=300)
    out = tmp_path / "reliability.json"
    results = run(params, list(SCENARIOS), out, tmp_path / "work", quiet=True)
    doc = json.loads(out.read_text())
    assert set(doc) == {check for checks in SCENARIOS.values() for check in checks}
    failed = {name: o.detail for name, o in results.items() if not o.passed}
    assert failed == {}, json.dumps(failed, indent=1)
