import pytest

from services.api.exceptions import InvalidArgument
from services.api.identifiers import E164, EntityResolver
from services.common.normalise import (
    InvalidImei,
    InvalidImsi,
    InvalidNumber,
    luhn_check_digit,
    normalise_imei,
    normalise_imsi,
    normalise_number,
    tac_of,
)
from services.common.pseudonym import Key, Pseudonymizer


@pytest.mark.parametrize("text", ["+31612345678", "0612345678", "06-1234 5678", "+31 (6) 1234 5678", "0031612345678"])
def test_dutch_mobile_forms_normalise_to_one_e164(text: str) -> None:
    n = normalise_number(text, "NL")
    assert (n.value, n.kind) == ("+31612345678", "e164")


def test_national_number_uses_the_operator_region() -> None:
    assert normalise_number("030 555 0111", "NL").value == "+31305550111"
    assert normalise_number("0151 12345678", "DE").value == "+4915112345678"


def test_short_codes_stay_digits() -> None:
    n = normalise_number("3010", "NL")
    assert (n.value, n.kind) == ("3010", "short_code")


def test_alphanumeric_sender_only_where_allowed() -> None:
    n = normalise_number("Rabobank", "NL", allow_alphanumeric=True)
    assert (n.value, n.kind) == ("Rabobank", "alphanumeric")
    with pytest.raises(InvalidNumber):
        normalise_number("Rabobank", "NL")
    with pytest.raises(InvalidNumber):
        normalise_number("ThisIsTooLongSender", "NL", allow_alphanumeric=True)


@pytest.mark.parametrize("text", ["", "+", "12", "+31", "+3161234567890123456", "06abc45678", "++31612345678", "😀"])
def test_unparseable_numbers_raise_invalid_number(text: str) -> None:
    with pytest.raises(InvalidNumber) as err:
        normalise_number(text, "NL")
    assert err.value.reason == "INVALID_NUMBER"


def test_imei_and_imeisv_reduce_to_tac_and_serial() -> None:
    imei15 = "35693803564380" + luhn_check_digit("35693803564380")
    assert imei15 == "356938035643809"
    assert normalise_imei(imei15) == "35693803564380"
    assert normalise_imei("3569380356438012") == "35693803564380"  # IMEISV: software version dropped
    assert normalise_imei("356938035643800") == "35693803564380"   # wrong check digit is not a reject
    assert tac_of("35693803564380") == "35693803"


@pytest.mark.parametrize("text", ["1234567890123", "12345678901234567", "35693803564380x"])
def test_imei_of_wrong_length_or_not_digits(text: str) -> None:
    with pytest.raises(InvalidImei):
        normalise_imei(text)


def test_imsi_mcc_mnc() -> None:
    nl = normalise_imsi("204081234567890")
    assert (nl.mcc, nl.mnc, nl.mccmnc) == ("204", "08", "20408")
    us = normalise_imsi("310260123456789")
    assert (us.mcc, us.mnc) == ("310", "260")
    with pytest.raises(InvalidImsi):
        normalise_imsi("12345")


def test_defaults_are_dutch_and_no_alphanumeric() -> None:
    assert normalise_number("0612345678").value == "+31612345678"
    with pytest.raises(InvalidNumber):
        normalise_number("Rabobank")


def test_imei_of_14_digits_is_taken_as_it_is_and_errors_say_why() -> None:
    assert normalise_imei("35693803564380") == "35693803564380"
    with pytest.raises(InvalidImei, match=r"^IMEI must be 14 to 16 digits$"):
        normalise_imei("1234567890123")
    with pytest.raises(InvalidImsi, match=r"^IMSI must be 6 to 15 digits$"):
        normalise_imsi("1234567890123456")
    assert normalise_imsi("123456").value == "123456"


def test_luhn_check_digit_zero() -> None:
    assert luhn_check_digit("35693803564308") == "0"      # (10 - total % 10) % 10 with total % 10 == 0


# --- the API's resolver: partner input -> the pseudonym ingest produced -------------------------

def _resolver() -> EntityResolver:
    return EntityResolver(Pseudonymizer(Key("k", b"k" * 32)), "NL")


def test_resolver_number_is_the_ingest_pseudonym_and_cached() -> None:
    resolver, pseudo = _resolver(), Pseudonymizer(Key("k", b"k" * 32))
    assert resolver.number("+31612345678") == pseudo("msisdn", "+31612345678")
    assert resolver.number("0612345678") == pseudo("msisdn", "+31612345678")       # national, in the region
    assert resolver.number("+31612345678") == resolver.number("+31612345678")


def test_resolver_pattern_valid_impossible_number_is_its_own_pseudonym() -> None:
    resolver, pseudo = _resolver(), Pseudonymizer(Key("k", b"k" * 32))
    assert resolver.number("+346661113334") == pseudo("msisdn", "+346661113334")


@pytest.mark.parametrize("text", ["abc", "+0612345678", "+3161234567890123", "+316123\n", ""])
def test_resolver_invalid_number_is_invalid_argument(text: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^phoneNumber is not a valid phone number\.$"):
        _resolver().number(text)


def test_resolver_device() -> None:
    resolver, pseudo = _resolver(), Pseudonymizer(Key("k", b"k" * 32))
    assert resolver.device("356938035643809") == pseudo("imei", "35693803564380")
    with pytest.raises(InvalidArgument, match=r"^imei must be 14 to 16 digits\.$"):
        resolver.device("12345")
    assert E164.match("+31612345678") and not E164.match("+31612345678\n") and not E164.match("+0123")


def test_resolver_reads_national_numbers_in_its_region_and_its_cache_is_bounded() -> None:
    pseudo = Pseudonymizer(Key("k", b"k" * 32))
    belgian = EntityResolver(pseudo, "BE", cache_size=2)
    assert belgian.number("0470123456") == pseudo("msisdn", "+32470123456")
    for i in range(3):
        belgian.number(f"+3247012345{i}")
    assert belgian.number.cache_info().currsize == 2  # type: ignore[attr-defined]
