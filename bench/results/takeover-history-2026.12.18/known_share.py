"""Share of a number's calls and SMS that go to a recipient already among its 16 most recent ones,
by how long the number had been observed: how soon "never-contacted" (the scorer's 16-slot recent
set) means what it says. Reads simulated worlds (``fraudradar simulate ... --warmup 24h``).

    python known_share.py OUT.json DIR [DIR ...]     # DIR: a world with events.jsonl, truth.jsonl
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson

EDGES = [0.5, 1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 30]
RECENT = 16


def digits(number: str) -> str | None:
    d = "".join(c for c in number if c.isdigit())
    return d[-9:] if len(d) >= 9 else None


def world(path: Path) -> dict[str, list[float]]:
    fraud = set()
    for line in (path / "truth.jsonl").read_bytes().splitlines():
        row = orjson.loads(line)
        if row.get("label", "fraud") == "fraud" and row["entity_type"] == "number":
            fraud.add(digits(str(row["identifier"])))
    first: dict[str, float] = {}
    recent: dict[str, list[str]] = {}
    total: Counter[float] = Counter()
    known: Counter[float] = Counter()
    with (path / "events.jsonl").open("rb") as fh:
        for line in fh:
            e = orjson.loads(line)
            t = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp()
            a, b = digits(e.get("a_number") or ""), digits(e.get("b_number") or "")
            mo = e.get("direction") == "mo"
            me = a if mo else b
            if me is None:
                continue
            first.setdefault(me, t)             # any event, as the record's FIRST_S
            if not mo or b is None or me in fraud:
                continue
            age = (t - first[me]) / 3600
            bucket = next((x for x in EDGES if age < x), 99.0)
            seen = recent.setdefault(me, [])
            total[bucket] += 1
            if b in seen:
                known[bucket] += 1
                seen.remove(b)
            seen.insert(0, b)
            del seen[RECENT:]
    return {"contacts": [total[x] for x in [*EDGES, 99.0]], "known": [known[x] for x in [*EDGES, 99.0]]}


def main(argv: list[str]) -> int:
    out, dirs = Path(argv[0]), [Path(d) for d in argv[1:]]
    doc = {"age_below_h": [*EDGES, None], "worlds": {d.name: world(d) for d in dirs}}
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    print("| history (h) | " + " | ".join(doc["worlds"]) + " |  (share, and its ratio to the 24-30 h share)")
    print("|---|" + "---|" * len(dirs))
    lows = [0.0, *EDGES]
    for i, edge in enumerate([*EDGES, None]):
        cells = []
        for w in doc["worlds"].values():
            steady = w["known"][-2] / w["contacts"][-2]       # 24-30 h: the evaluated day
            share = w["known"][i] / w["contacts"][i] if w["contacts"][i] else 0.0
            cells.append(f"{share:.2f} ({share / steady:.2f})")
        if edge is None:
            continue
        label = f"{lows[i]:g}–{edge:g}"
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
