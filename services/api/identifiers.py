"""From what a partner sends to the pseudonym the topics are keyed by.

Numbers are normalised to E.164 (libphonenumber, national numbers read in the configured
region), IMEIs to their 14-digit TAC+serial, then replaced by the keyed pseudonym. Invalid
input raises ``InvalidArgument`` (400 INVALID_ARGUMENT). The normalisation here mirrors
``services.common.identifiers`` (the ingest's); it switches to that module once it lands on
main so both sides produce identical pseudonyms.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import phonenumbers

from services.api.exceptions import InvalidArgument
from services.common.pseudonym import Pseudonymizer

_IMEI = re.compile(r"^[0-9]{14,16}$")


def _common_normaliser() -> Callable[..., Any] | None:
    """The ingest's normaliser when it is installed (looked up once, not per request)."""
    try:
        from services.common import identifiers  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    found: Callable[..., Any] | None = getattr(identifiers, "normalise_number", None)
    return found


_COMMON = _common_normaliser()


@functools.lru_cache(maxsize=1 << 16)
def normalise_number(text: str, region: str) -> str:
    """E.164 of a phone number; raises ``InvalidArgument`` for anything that is not one."""
    if _COMMON is not None:
        try:
            return str(_COMMON(text, region=region))
        except Exception as exc:  # the lead's typed error; any failure is the client's input
            raise InvalidArgument("phoneNumber is not a valid phone number.") from exc
    if len(text) > 32:
        raise InvalidArgument("phoneNumber is not a valid phone number.")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidArgument("phoneNumber is not a valid phone number.") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidArgument("phoneNumber is not a valid phone number.")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def normalise_imei(text: str) -> str:
    """The 14-digit TAC+serial of an IMEI or IMEISV (check digit / software version dropped)."""
    digits = text.strip()
    if not _IMEI.match(digits):
        raise InvalidArgument("imei must be 14 to 16 digits.")
    return digits[:14]


class EntityResolver:
    """Normalise and pseudonymise partner input in one call."""

    def __init__(self, pseudonymizer: Pseudonymizer, region: str) -> None:
        self._pseudonymizer = pseudonymizer
        self._region = region

    def number(self, text: str) -> str:
        return self._pseudonymizer("msisdn", normalise_number(text, self._region))

    def device(self, imei: str) -> str:
        return self._pseudonymizer("imei", normalise_imei(imei))
