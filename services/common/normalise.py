"""Identifier normalisation: phone numbers, IMEI, IMSI (docs/privacy.md).

Every identifier is normalised before it is pseudonymised, so ``0612345678`` and
``+31 6 1234 5678`` become the same pseudonym:

- numbers → E.164 via libphonenumber (``phonenumbers``), national numbers in the operator's
  region; short codes (3–6 digits, no prefix) stay as digits; SMS originators may be
  alphanumeric sender ids (≤ 11 characters, at least one letter), kept as sent.
- IMEI (15 digits) and IMEISV (16 digits) → the 14-digit TAC+serial; the check digit or the
  software version is dropped (the check digit is not sent over the network, so a wrong one is
  no reason to reject). The TAC (first 8 digits) names the device model and is kept in clear.
- IMSI → digits, with MCC and MNC derived (MNC length from the MCC: 3 digits in North America).

Raises ``IdentifierError`` subclasses with a stable ``reason`` code; never anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from services.common.exceptions import FraudradarError
from services.common.records import NumberKind


class IdentifierError(FraudradarError):
    reason = "INVALID_IDENTIFIER"


class InvalidNumber(IdentifierError):
    reason = "INVALID_NUMBER"


class InvalidImei(IdentifierError):
    reason = "INVALID_IMEI"


class InvalidImsi(IdentifierError):
    reason = "INVALID_IMSI"


@dataclass(frozen=True, slots=True)
class NormalisedNumber:
    value: str          # E.164, short-code digits, or the alphanumeric sender id
    kind: NumberKind


@dataclass(frozen=True, slots=True)
class NormalisedImsi:
    value: str          # 6..15 digits
    mcc: str
    mnc: str

    @property
    def mccmnc(self) -> str:
        return self.mcc + self.mnc


_SEPARATORS = re.compile(r"[\s().\-/]")
_SHORT_CODE = re.compile(r"^[1-9][0-9]{2,5}\Z")  # \Z: "$" would accept a trailing newline
_ALNUM_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9][A-Za-z0-9 .&_\-]{0,10}\Z")
_DIGITS = re.compile(r"^[0-9]+\Z")
# MCCs whose MNCs have 3 digits (ITU-T E.212: North America and a few others).
_THREE_DIGIT_MNC_MCC = frozenset({"302", "310", "311", "312", "313", "314", "315", "316", "334", "338", "342",
                                  "344", "346", "348", "354", "356", "358", "360", "365", "376", "405", "708",
                                  "722", "732"})


def normalise_number(text: str, region: str = "NL", allow_alphanumeric: bool = False) -> NormalisedNumber:
    """Normalise a presented number; ``allow_alphanumeric`` for SMS originators only."""
    return _normalise_number_cached(text, region, allow_alphanumeric)


@lru_cache(maxsize=1 << 18)
def _normalise_number_cached(text: str, region: str, allow_alphanumeric: bool) -> NormalisedNumber:
    if not isinstance(text, str) or not text or len(text) > 32:
        raise InvalidNumber("number must be a non-empty string of at most 32 characters")
    compact = _SEPARATORS.sub("", text)
    if _SHORT_CODE.match(compact):
        return NormalisedNumber(compact, "short_code")
    if allow_alphanumeric and _ALNUM_SENDER.match(text) and not compact.startswith("+"):
        return NormalisedNumber(text, "alphanumeric")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not (compact.startswith("+") and _DIGITS.match(compact[1:])) and not _DIGITS.match(compact):
        raise InvalidNumber("number has characters other than digits, '+' and separators")
    try:
        parsed = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"unparseable number: {exc.error_type}") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber("not a possible number for its country")
    return NormalisedNumber(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), "e164")


def normalise_imei(text: str) -> str:
    """IMEI (15) or IMEISV (16) digits → 14-digit TAC+serial; 14 digits are taken as they are."""
    if not isinstance(text, str) or not _DIGITS.match(text) or not 14 <= len(text) <= 16:
        raise InvalidImei("IMEI must be 14 to 16 digits")
    return text[:14]


def tac_of(imei14: str) -> str:
    return imei14[:8]


def luhn_check_digit(digits14: str) -> str:
    """The IMEI check digit of 14 digits (used by the simulator to write real-looking IMEIs)."""
    total = 0
    for i, ch in enumerate(digits14):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


@lru_cache(maxsize=1 << 16)
def normalise_imsi(text: str) -> NormalisedImsi:
    if not isinstance(text, str) or not _DIGITS.match(text) or not 6 <= len(text) <= 15:
        raise InvalidImsi("IMSI must be 6 to 15 digits")
    mcc = text[:3]
    mnc_len = 3 if mcc in _THREE_DIGIT_MNC_MCC else 2
    return NormalisedImsi(text, mcc, text[3:3 + mnc_len])
