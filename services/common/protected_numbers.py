"""Protected caller numbers: the numbers banks call their customers from (and do-not-originate numbers).

A CSV with the header ``number,owner``: ``number`` a bank's outbound or contact-centre number
(E.164 or national in the default region), ``owner`` the partner id of the bank that owns it
(``dno`` for a do-not-originate number no one may present, such as an inbound-only helpline).
Bank numbers are public business numbers, not personal data. Ingest checks every ``call_state``
event's presented CLI against the list at the privacy boundary, so what travels beyond it is
only the owner's id; the API checks a pre-announcement's calling number against the same list
(a bank may announce only calls from its own numbers).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from services.common.exceptions import ConfigError
from services.common.normalise import IdentifierError, normalise_number

DNO_OWNER = "dno"


@dataclass(frozen=True)
class ProtectedNumbers:
    """E.164 (or short code) → owner partner id."""

    owners: dict[str, str]

    @classmethod
    def empty(cls) -> ProtectedNumbers:
        return cls({})

    @classmethod
    def parse(cls, text: str, region: str = "NL") -> ProtectedNumbers:
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not {"number", "owner"} <= set(reader.fieldnames):
            raise ConfigError("protected numbers: the CSV needs the header number,owner")
        owners: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            number, owner = (row.get("number") or "").strip(), (row.get("owner") or "").strip()
            if not owner:
                raise ConfigError(f"protected numbers line {line}: owner is empty")
            try:
                owners[normalise_number(number, region).value] = owner
            except IdentifierError as exc:
                raise ConfigError(f"protected numbers line {line}: {exc}") from exc
        return cls(owners)

    @classmethod
    def load(cls, path: str | None, region: str = "NL") -> ProtectedNumbers:
        if not path:
            return cls.empty()
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"protected numbers: cannot read {path}: {exc.strerror}") from exc
        return cls.parse(text, region)

    def owner_of(self, normalised: str) -> str | None:
        return self.owners.get(normalised)

    def numbers_of(self, owner: str) -> frozenset[str]:
        return frozenset(n for n, o in self.owners.items() if o == owner)
