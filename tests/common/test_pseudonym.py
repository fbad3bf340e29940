import pytest

from services.common.exceptions import ConfigError
from services.common.pseudonym import Discloser, DisclosureError, Pseudonymizer, generate_key_text, parse_key


def test_same_input_and_key_same_pseudonym_and_hex_128_bits() -> None:
    key = parse_key(generate_key_text("k1"))
    a, b = Pseudonymizer(key), Pseudonymizer(key)
    p = a("msisdn", "+31612345678")
    assert p == b("msisdn", "+31612345678")
    assert len(p) == 32 and int(p, 16) >= 0
    assert a.key_id == "k1"


def test_another_key_or_domain_gives_another_pseudonym() -> None:
    a = Pseudonymizer(parse_key(generate_key_text("k1")))
    b = Pseudonymizer(parse_key(generate_key_text("k2")))
    assert a("msisdn", "+31612345678") != b("msisdn", "+31612345678")
    assert a("msisdn", "204081234567890") != a("imsi", "204081234567890")


def test_pseudonym_is_keyed_hmac_not_a_plain_hash() -> None:
    import hashlib

    p = Pseudonymizer(parse_key(generate_key_text("k")))("msisdn", "+31612345678")
    assert p != hashlib.sha256(b"msisdn:+31612345678").hexdigest()[:32]
    assert p != hashlib.sha256(b"+31612345678").hexdigest()[:32]


def test_disclosure_round_trip_bound_to_its_pseudonym() -> None:
    d = Discloser(parse_key(generate_key_text("d1")))
    token = d.seal("+31612345678", "aaaa")
    assert "+31612345678" not in token and "612345678" not in token
    assert d.open(token, "aaaa") == "+31612345678"
    with pytest.raises(DisclosureError):
        d.open(token, "bbbb")  # moved onto another entity's record
    other = Discloser(parse_key(generate_key_text("d1")))  # same id, other secret
    with pytest.raises(DisclosureError):
        other.open(token, "aaaa")


@pytest.mark.parametrize("text", ["nocolon", "id:not-base64!", "id:" + "AA=="])
def test_bad_keys_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_key(text)
