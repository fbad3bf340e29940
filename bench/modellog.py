"""The models' journal: what it costs, and what a restore without it gets wrong (engine only).

    python bench/modellog.py --json bench/results/modellog.json [--views 200000]

One stream (the scorer bench's synthetic mix) through three engines:

1. ``whole``: never stops — the reference scores.
2. ``crashed``: commits every ``--commit-every`` views the way the service does (entity
   changelog, then ``model_records``: a journal batch, or the checkpoint at one third of the
   stream), and dies ``--commit-every // 3`` views after its last commit at two thirds.
3. Two restores from that log, replaying the views from the last committed one: with the
   journal, and checkpoint-only (the restore before the journal existed).

Writes the scores that differ from ``whole`` in each restore (model percentiles and alert ids
included), the journal's bytes per learned point (compressed, and the largest uncompressed
entry), its encode and replay cost per point, the checkpoint's size and pickling time, and
``journal_cost_ratio``: encode time over the engine's own processing time of the same views.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
from scorer import _views  # the scorer bench's stream, so both benches measure the same data
from tqdm import tqdm

from services.common.pseudonym import Pseudonymizer, generate_key_text, parse_key
from services.common.records import View
from services.scorer.output import EngineOutput
from services.scorer.partition import PartitionScorer
from services.scorer.state.modellog import is_journal_key

Log = list[tuple[bytes, bytes | None]]


def _signature(out: EngineOutput) -> tuple[object, ...]:
    return out.score, sorted(out.model_scores.items()), [a.alert_id for a in out.alerts]


def _restored(pseudo: Pseudonymizer, log: Log, journal: bool) -> tuple[PartitionScorer, float, int]:
    eng = PartitionScorer.default(pseudo, journal=True)
    for key, value in log:
        if journal or not is_journal_key(key):
            eng.state.apply_changelog(key, value)
    eng.state.finish_restore()
    started = time.perf_counter()
    report = eng.state.restore_models()
    return eng, time.perf_counter() - started, report.entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--views", type=int, default=200_000)
    parser.add_argument("--commit-every", type=int, default=2_000)
    args = parser.parse_args()
    pseudo = Pseudonymizer(parse_key(os.environ.get("FRAUDRADAR_PSEUDONYM_KEY") or generate_key_text("bench")))
    views: list[View] = _views(args.views, seed=1)
    n = len(views)
    every = args.commit_every
    checkpoint_commit = max(1, n // 3 // every)
    crash_commit = max(checkpoint_commit + 1, 2 * n // 3 // every)

    whole = PartitionScorer.default(pseudo)
    expected = [_signature(whole.process(v, offset=i)) for i, v in enumerate(tqdm(views, desc="uninterrupted"))]

    crashed = PartitionScorer.default(pseudo, journal=True)
    log: Log = []
    processing = encoding = checkpoint_s = 0.0
    checkpoint_bytes = journalled = 0
    raw_max = 0
    committed = n
    for i, view in enumerate(tqdm(views, desc="with commits")):
        started = time.perf_counter()
        crashed.process(view, offset=i)
        processing += time.perf_counter() - started
        if (i + 1) % every:
            continue
        commit = (i + 1) // every
        log.extend(crashed.state.changelog())
        pending = crashed.state.journal._entries       # read-only: the largest uncompressed entry
        raw_max = max([raw_max, *(len(msgspec.msgpack.encode(e)) for e in pending)])
        if commit != checkpoint_commit:          # a checkpoint includes them: nothing encoded
            journalled += len(pending)
        started = time.perf_counter()
        records = crashed.state.model_records(checkpoint=commit == checkpoint_commit)
        elapsed = time.perf_counter() - started
        if commit == checkpoint_commit:
            checkpoint_s, checkpoint_bytes = elapsed, len(records[0][1] or b"")
        else:
            encoding += elapsed
        log.extend(records)
        if commit == crash_commit:
            committed = i + 1
            for j in range(committed, min(n, committed + every // 3)):   # applied, never committed
                crashed.process(views[j], offset=j)
            break
    journal_bytes = sum(len(v or b"") for k, v in log if is_journal_key(k))
    journal_records = sum(1 for k, v in log if is_journal_key(k) and v is not None)
    journal_entries_after = 0

    result: dict[str, object] = {"views": n, "commit_every": every, "checkpoint_at_view": checkpoint_commit * every,
                                 "crash_after_view": committed, "compared_views": n - committed}
    for name, with_journal in (("journal", True), ("checkpoint_only", False)):
        eng, replay_s, entries = _restored(pseudo, log, with_journal)
        got = [_signature(eng.process(v, offset=i)) for i, v in enumerate(views) if i >= committed]
        result[f"score_diffs_{name}"] = sum(a != b for a, b in zip(got, expected[committed:], strict=True))
        if with_journal:
            journal_entries_after = entries
            result["replay_us_per_entry"] = round(replay_s / max(entries, 1) * 1e6, 1)
    result.update(
        learned_points_journalled=journalled, journal_records=journal_records,
        journal_entries_replayed=journal_entries_after,
        journal_bytes_per_entry=round(journal_bytes / max(journalled, 1), 1),
        journal_raw_bytes_per_entry_max=raw_max,
        encode_us_per_entry=round(encoding / max(journalled, 1) * 1e6, 2),
        checkpoint_bytes=checkpoint_bytes, checkpoint_ms=round(checkpoint_s * 1000, 1),
        journal_cost_ratio=round(encoding / processing, 4),
        engine_us_per_view=round(processing / max(committed, 1) * 1e6, 1),
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
