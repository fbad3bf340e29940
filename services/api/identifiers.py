"""From what a partner sends to the pseudonym the topics are keyed by.

The normalisation is the ingest's own (``services.common.identifiers``: E.164 via
libphonenumber with national numbers read in the configured region, short codes as digits,
IMEI/IMEISV to the 14-digit TAC+serial), so a lookup lands on exactly the pseudonym ingest
produced. Invalid input raises ``InvalidArgument`` (400 INVALID_ARGUMENT, as CAMARA asks).
"""

from __future__ import annotations

from functools import lru_cache

from services.api.exceptions import InvalidArgument
from services.common.identifiers import IdentifierError, normalise_imei, normalise_number
from services.common.pseudonym import Pseudonymizer


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
            number = normalise_number(text, self._region)
        except IdentifierError as exc:
            raise InvalidArgument("phoneNumber is not a valid phone number.") from exc
        return self._pseudonymizer("msisdn", number.value)

    def device(self, imei: str) -> str:
        try:
            return self._pseudonymizer("imei", normalise_imei(imei))
        except IdentifierError as exc:
            raise InvalidArgument("imei must be 14 to 16 digits.") from exc
