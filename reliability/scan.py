"""Plaintext identifier scan over bytes: every form in which a number, IMEI or IMSI could leak.

The identifiers come from the raw input itself (every ``a_number``, ``b_number``, ``msisdn``,
``imei``, ``imsi`` the run produced, normalised as ingest does), so the scan looks for exactly
what went in. Forms: E.164 digits, the Dutch national forms (``06…``, ``6…``), the IMEI as sent
and as its 14-digit TAC+serial, the IMSI.

A hit is a digit token of its own: delimited by anything but letters and digits (a JSON string,
a key, a header, a log field, a URL parameter), with an optional ``+`` or ``00`` prefix. Forms
*inside* longer digit runs and hex words are not hits: at full scale a 9-digit national form
matches by chance inside the 13-digit epoch-ms timestamps and the hex pseudonyms every view
carries, which says nothing about a leak (docs/reliability.md has the run that showed it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from services.common.normalise import IdentifierError, normalise_number

_TOKEN = re.compile(rb"(?<![0-9A-Za-z])(?:\+|00)?([0-9]{8,})(?![0-9A-Za-z])")
_fields = msgspec.json.Decoder()


@dataclass
class Identifiers:
    numbers: set[str] = field(default_factory=set)
    imeis: set[str] = field(default_factory=set)
    imsis: set[str] = field(default_factory=set)

    def add_raw(self, raw: bytes | None) -> None:
        """Collect the identifiers of one raw event (ignores what does not parse)."""
        if not raw:
            return
        try:
            ev = _fields.decode(raw)
        except (msgspec.DecodeError, ValueError, RecursionError):
            return
        if not isinstance(ev, dict):
            return
        sim_block = ev.get("sim")
        sim: dict[str, Any] = sim_block if isinstance(sim_block, dict) else {}
        for text in (ev.get("a_number"), ev.get("b_number"), sim.get("msisdn")):
            if isinstance(text, str):
                try:
                    number = normalise_number(text, "NL", allow_alphanumeric=True)
                except IdentifierError:
                    continue
                if number.kind == "e164":
                    self.numbers.add(number.value)
        for text in (ev.get("imei"), sim.get("imei")):
            if isinstance(text, str) and text.isdigit() and 14 <= len(text) <= 16:
                self.imeis.add(text)
        for text in (ev.get("imsi"), sim.get("imsi")):
            if isinstance(text, str) and text.isdigit() and 6 <= len(text) <= 15:
                self.imsis.add(text)

    def forms(self) -> set[bytes]:
        out: set[bytes] = set()
        for e164 in self.numbers:
            digits = e164.lstrip("+")
            if len(digits) < 8:
                continue
            out.add(digits.encode())
            if digits.startswith("31"):
                out.add(("0" + digits[2:]).encode())
                out.add(digits[2:].encode())
        for imei in self.imeis:
            out.add(imei.encode())
            out.add(imei[:14].encode())
        out.update(i.encode() for i in self.imsis if len(i) >= 8)
        return out

    def __len__(self) -> int:
        return len(self.numbers) + len(self.imeis) + len(self.imsis)


def plaintext_tokens(blob: bytes, forms: set[bytes]) -> list[bytes]:
    """The identifier forms that stand as tokens of their own in ``blob``."""
    return [token for token in _TOKEN.findall(blob) if token in forms]


@dataclass
class Scanner:
    """Counts hits of ``forms`` in the blobs it is fed, per source label."""

    forms: set[bytes]
    hits: dict[str, int] = field(default_factory=dict)
    scanned: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def feed(self, label: str, blobs: Iterable[bytes | None]) -> None:
        forms = self.forms
        hits = 0
        size = 0
        for blob in blobs:
            if not blob:
                continue
            size += len(blob)
            for token in plaintext_tokens(blob, forms):
                hits += 1
                if len(self.examples) < 5:
                    # the kind of leak, not the identifier itself
                    self.examples.append(f"{label}: {len(token)}-digit identifier form")
        self.hits[label] = self.hits.get(label, 0) + hits
        self.scanned[label] = self.scanned.get(label, 0) + size

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())


def record_blobs(records: Iterable[object]) -> Iterable[bytes | None]:
    """Key, value and every header value of each Kafka record."""
    for rec in records:
        yield rec.key  # type: ignore[attr-defined]
        yield rec.value  # type: ignore[attr-defined]
        for name, value in rec.headers or []:  # type: ignore[attr-defined]
            yield name.encode() if isinstance(name, str) else name
            yield value
