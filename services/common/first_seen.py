"""The scorer's "first seen" signal on ``fraudradar.first-seen`` (docs/architecture.md, "Live call state").

When the scorer creates a number's state (the first view of a number it holds no state for:
never seen, or forgotten after its idle horizon) it writes one ``FirstSeen`` record, keyed by
the number's pseudonym. The API keeps those of the last day in memory to class a call's
counterpart as "first seen today" (``services/api/first_seen.py``). Pseudonyms only; the topic
keeps records two days, the API one.
"""

from __future__ import annotations

import msgspec


class FirstSeen(msgspec.Struct, frozen=True):
    number: str                  # pseudonym of the number (the record's key)
    first_seen_ms: int           # event time of the first view the scorer holds of it


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(FirstSeen)


def encode_first_seen(record: FirstSeen) -> bytes:
    return _encoder.encode(record)


def decode_first_seen(data: bytes) -> FirstSeen:
    return _decoder.decode(data)
