"""Find plaintext identifiers in output bytes: the reliability scanner's forms and token matching."""

from __future__ import annotations

from collections.abc import Iterable

from reliability.scan import Identifiers, plaintext_tokens


def identifier_forms(numbers: Iterable[str], imeis: Iterable[str] = (), imsis: Iterable[str] = ()) -> set[bytes]:
    """Digit strings whose presence as a token would leak an identifier (E.164, national, IMEI, IMSI)."""
    return Identifiers(set(numbers), set(imeis), set(imsis)).forms()


def find_plaintext(blobs: Iterable[bytes], forms: set[bytes]) -> list[bytes]:
    """Every identifier form that stands as a token of its own in any blob."""
    return [hit for blob in blobs for hit in plaintext_tokens(blob, forms)]
