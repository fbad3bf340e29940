"""From what a partner sends to the pseudonym the topics are keyed by.

The normalisation is the ingest's own (``services.common.normalise``: E.164 via
libphonenumber with national numbers read in the configured region, short codes as digits,
IMEI/IMEISV to the 14-digit TAC+serial), so a lookup lands on exactly the pseudonym ingest
produced. Invalid input raises ``InvalidArgument`` (400 INVALID_ARGUMENT, as CAMARA asks).

Partners send numbers in E.164 (``^\\+[1-9][0-9]{4,14}$``, the CAMARA pattern; the schema
enforces it). A number that matches the pattern but that libphonenumber does not take as a
possible number (``+346661113334``) is *not* an error: ingest dead-letters such numbers, so
it can never carry a signal. It is pseudonymised as its raw E.164 text and answered like any
unseen number (no signal, audited, budgeted), so the answer path is the same for every
schema-valid number and the answer does not tell a partner which numbers are possible.
The CAMARA routes are the exception: their specs answer such a number ``404
IDENTIFIER_NOT_FOUND`` (``is_possible``); impossibility is public numbering-plan knowledge, so
that answer says nothing about any subscriber.
"""

from __future__ import annotations

import re
from functools import lru_cache

from services.api.exceptions import InvalidArgument
from services.common.normalise import IdentifierError, normalise_imei, normalise_number
from services.common.pseudonym import Pseudonymizer

E164 = re.compile(r"^\+[1-9][0-9]{4,14}\Z")


class EntityResolver:
    """Normalise and pseudonymise partner input in one call."""

    def __init__(self, pseudonymizer: Pseudonymizer, region: str, cache_size: int = 1 << 18) -> None:
        self._pseudonymizer = pseudonymizer
        self._region = region
        # Partners look the same numbers up again and again (every payment of a customer):
        # one cache lookup instead of normalisation and HMAC, each behind its own cache.
        self.number = lru_cache(maxsize=cache_size)(self._number)  # type: ignore[method-assign]

    def number(self, text: str) -> str:
        """The pseudonym of a presented number (cached per text); ``InvalidArgument`` if invalid."""
        return self._number(text)

    def _number(self, text: str) -> str:
        try:
            value = normalise_number(text, self._region).value
        except IdentifierError as exc:
            if not E164.match(text):
                raise InvalidArgument("phoneNumber is not a valid phone number.") from exc
            # pattern-valid but not a possible number: never seen by ingest, so no signal
            value = text
        return self._pseudonymizer("msisdn", value)

    def is_possible(self, text: str) -> bool:
        """Whether libphonenumber takes ``text`` as a possible number (public numbering-plan facts)."""
        try:
            normalise_number(text, self._region)
        except IdentifierError:
            return False
        return True

    def device(self, imei: str) -> str:
        try:
            return self._pseudonymizer("imei", normalise_imei(imei))
        except IdentifierError as exc:
            raise InvalidArgument("imei must be 14 to 16 digits.") from exc
