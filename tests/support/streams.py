"""A labelled mixed stream of raw events: good ones with known identifiers, bad ones with the
reason ingest must give them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from services.common.normalise import luhn_check_digit


@dataclass
class MixedStream:
    records: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    expected: list[str | None] = field(default_factory=list)   # None = good, else the reason code
    good_ids: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    imeis: set[str] = field(default_factory=set)
    imsis: set[str] = field(default_factory=set)
    device_events: int = 0


def _imei(rng: random.Random) -> str:
    body = "35" + "".join(rng.choice("0123456789") for _ in range(12))
    return body + luhn_check_digit(body)


def mixed_stream(n: int, bad_ratio: float = 0.1, seed: int = 1, base: datetime | None = None) -> MixedStream:
    rng = random.Random(seed)
    # events are 50 ms apart; the last one lands ~2 min ago, so none is beyond ingest's future bound
    base = base or datetime.now(UTC) - timedelta(milliseconds=50 * n) - timedelta(minutes=2)
    subs = [f"+316{rng.randrange(10**7, 10**8)}" for _ in range(max(50, n // 20))]
    imeis = {s: _imei(rng) for s in subs}
    imsis = {s: f"20408{rng.randrange(10**9, 10**10)}" for s in subs}
    out = MixedStream()
    bad_kinds = [
        (lambda ev: b"{broken json", "INVALID_JSON"),
        (lambda ev: b"[1,2,3]", "NOT_AN_OBJECT"),
        (lambda ev: orjson.dumps({**ev, "pad": "x" * 70_000}), "TOO_LARGE"),
        (lambda ev: orjson.dumps({k: v for k, v in ev.items() if k != "occurred_at"}), "MISSING_FIELD"),
        (lambda ev: orjson.dumps({**ev, "event_id": 7}), "WRONG_TYPE"),
        (lambda ev: orjson.dumps({**ev, "type": "mms"}), "UNKNOWN_TYPE"),
        (lambda ev: orjson.dumps({**ev, "occurred_at": "02/11/2026 10:00"}), "BAD_TIMESTAMP"),
        (lambda ev: orjson.dumps({**ev, "b_number": "06-NOT-A-NUMBER"}), "INVALID_NUMBER"),
        (lambda ev: orjson.dumps({**ev, "imei": "123"}), "INVALID_IMEI"),
        (lambda ev: orjson.dumps({**ev, "imsi": "1234"}), "INVALID_IMSI"),
        (lambda ev: orjson.dumps({**ev, "schema_version": 9}), "SCHEMA_VERSION"),
    ]
    for i in range(n):
        a, b = rng.sample(subs, 2)
        when = base + timedelta(milliseconds=i * 50)
        event_id = f"ev-{seed}-{i}"
        kind = rng.random()
        ev: dict[str, object] = {"event_id": event_id, "operator": rng.choice(["kpn", "odido", "vodafoneziggo"]),
                                 "occurred_at": when.isoformat(), "a_number": a,
                                 "b_number": b if rng.random() < 0.8 else "0" + b[3:], "direction": "mo"}
        if kind < 0.6:
            ev["type"] = "sms"
            ev["sms"] = {"segments": 1, "has_url": rng.random() < 0.1, "chars": rng.randrange(1, 160)}
        elif kind < 0.97:
            ev["type"] = "call"
            ev["call"] = {"duration_s": round(rng.expovariate(1 / 60), 1), "answered": rng.random() < 0.8}
        else:
            ev = {"event_id": event_id, "operator": "kpn", "type": "sim", "occurred_at": when.isoformat(),
                  "sim": {"change": "swap", "msisdn": a, "imsi": imsis[a]}}
        if ev["type"] != "sim" and rng.random() < 0.7:
            ev["imei"], ev["imsi"], ev["cell_id"] = imeis[a], imsis[a], f"cell-{rng.randrange(300)}"
            out.device_events += 1
        key = event_id.encode()
        if rng.random() < bad_ratio and ev["type"] != "sim":
            make, reason = bad_kinds[i % len(bad_kinds)]
            out.records.append((key, make(ev)))
            out.expected.append(reason)
            if "imei" in ev:
                out.device_events -= 1
            continue
        out.records.append((key, orjson.dumps(ev)))
        out.expected.append(None)
        out.good_ids.add(event_id)
        out.numbers.update({a, b})
        if "imei" in ev:
            out.imeis.add(str(ev["imei"]))
            out.imsis.add(str(ev["imsi"]))
    return out
