"""Find plaintext identifiers in output bytes (numbers in E.164, national and bare forms; IMEI; IMSI)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_DIGITS = re.compile(rb"[0-9]{6,}")


def identifier_forms(numbers: Iterable[str], imeis: Iterable[str] = (), imsis: Iterable[str] = ()) -> set[bytes]:
    """Digit strings whose presence would leak an identifier."""
    forms: set[bytes] = set()
    for e164 in numbers:
        digits = e164.lstrip("+")
        if len(digits) < 8:
            continue  # short codes and alphanumeric senders are not personal identifiers
        forms.add(digits.encode())            # 31612345678
        if digits.startswith("31"):
            forms.add(("0" + digits[2:]).encode())   # 0612345678
            forms.add(digits[2:].encode())           # 612345678
    for imei in imeis:
        forms.add(imei.encode())
        forms.add(imei[:14].encode())
    forms.update(i.encode() for i in imsis)
    return forms


def find_plaintext(blobs: Iterable[bytes], forms: set[bytes]) -> list[bytes]:
    """Every identifier form that occurs in any blob (inside longer digit runs too)."""
    lengths = sorted({len(f) for f in forms})
    hits: list[bytes] = []
    for blob in blobs:
        for run in _DIGITS.findall(blob):
            for n in lengths:
                if n > len(run):
                    break
                for i in range(len(run) - n + 1):
                    if run[i:i + n] in forms:
                        hits.append(run[i:i + n])
    return hits
