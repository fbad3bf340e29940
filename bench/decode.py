"""Decoder choices for raw events: json vs orjson vs msgspec (parse), and schema validators.

    python bench/decode.py --json bench/results/decode.json

Parses the same 50k raw events with each library (to a dict; msgspec also to a typed Struct)
and runs the full ingest decode (orjson + jsonschema-rs + timestamp) for reference. Writes
events/s per variant and each variant's ratio to stdlib ``json`` (the baseline).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
import orjson

from services.ingest.decode import decode, load_schema
from tests.support.streams import mixed_stream


class _Sms(msgspec.Struct):
    segments: int
    has_url: bool = False
    chars: int = 0


class _Call(msgspec.Struct):
    duration_s: float
    answered: bool


class _Event(msgspec.Struct):
    event_id: str
    operator: str
    type: str
    occurred_at: str
    a_number: str | None = None
    b_number: str | None = None
    direction: str = "mo"
    imei: str | None = None
    imsi: str | None = None
    cell_id: str | None = None
    sms: _Sms | None = None
    call: _Call | None = None


def _rate(fn: Callable[[bytes], object], data: list[bytes], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for raw in data:
            fn(raw)
        best = min(best, time.perf_counter() - t)
    return len(data) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    stream = mixed_stream(args.events, 0.0, 9)
    data = [raw for _, raw in stream.records if b'"sim"' not in raw]
    import jsonschema_rs

    objs = [orjson.loads(raw) for raw in data]
    rs = jsonschema_rs.validator_for(load_schema())
    typed = msgspec.json.Decoder(_Event)
    variants = {
        "json.loads": _rate(json.loads, data),
        "orjson.loads": _rate(orjson.loads, data),
        "msgspec.json.decode": _rate(msgspec.json.decode, data),
        "msgspec typed Struct": _rate(typed.decode, data),
        "ingest decode (msgspec + jsonschema-rs + RFC 3339)": _rate(decode, data),
    }
    validators = {
        "jsonschema-rs is_valid": len(objs) / min(_timed(lambda: [rs.is_valid(o) for o in objs]) for _ in range(3)),
    }
    try:  # the alternative we measured and dropped; optional here
        import fastjsonschema

        fjs = fastjsonschema.compile(load_schema())
        validators["fastjsonschema"] = len(objs) / min(_timed(lambda: [fjs(o) for o in objs]) for _ in range(3))
    except ImportError:
        pass
    base = variants["json.loads"]
    result = {
        "benchmark": "decode",
        "events": len(data),
        "parse_events_per_s": {k: round(v) for k, v in variants.items()},
        "parse_ratio_to_json": {k: round(v / base, 2) for k, v in variants.items()},
        "validate_events_per_s": {k: round(v) for k, v in validators.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
