"""``fraudradar validate FILE``: check a JSON-lines export against the event contract.

For telcos before they push. Runs the ingest decoder and identifier normalisation (the same
code as the service), so a line that passes here is accepted by ingest. Prints a human
summary, or with ``--json`` exactly ``{"valid": int, "invalid": int, "reasons": {"CODE": n}}``.
Exit codes: 0 every line valid, 1 some invalid, 2 the file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from services.common.pseudonym import Key, Pseudonymizer
from services.ingest.pipeline import IngestLimits, IngestPipeline
from services.ingest.transform import Transformer


def _throwaway_pipeline(region: str, max_bytes: int) -> IngestPipeline:
    # Validation needs no real key: pseudonyms are computed and thrown away.
    key = Key("validate", b"\0" * 32)
    limits = IngestLimits(max_bytes=max_bytes, dedupe_window=1)
    return IngestPipeline(Transformer(Pseudonymizer(key, cache_size=1024), None, region), limits)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar validate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="JSON lines, one raw event per line ('-' for stdin)")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    parser.add_argument("--region", default="NL", help="region of national numbers (default NL)")
    parser.add_argument("--max-bytes", type=int, default=64 * 1024, help="largest accepted event")
    parser.add_argument("--show", type=int, default=10, help="invalid lines to show in the human summary")
    args = parser.parse_args(argv)
    try:
        stream = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    except OSError as exc:
        print(f"fraudradar validate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    pipeline = _throwaway_pipeline(args.region, args.max_bytes)
    reasons: Counter[str] = Counter()
    examples: list[str] = []
    valid = 0
    try:
        with stream:
            for lineno, line in enumerate(stream, 1):
                raw = line.rstrip(b"\r\n")
                if not raw.strip():
                    continue
                result = pipeline.process(raw, now_ms=None)
                if result.reason is None:
                    valid += 1
                    continue
                reasons[result.reason] += 1
                if len(examples) < args.show:
                    examples.append(f"  line {lineno}: {result.reason}: {result.detail}")
    except OSError as exc:
        print(f"fraudradar validate: error reading {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    invalid = sum(reasons.values())
    if args.json:
        print(json.dumps({"valid": valid, "invalid": invalid, "reasons": dict(sorted(reasons.items()))}))
    else:
        total = valid + invalid
        print(f"{args.file}: {total} events, {valid} valid, {invalid} invalid")
        for code, count in reasons.most_common():
            print(f"  {code:<16} {count}")
        if examples:
            print("first invalid lines:")
            print("\n".join(examples))
    return 0 if invalid == 0 else 1
