import base64

import pytest

from services.common.exceptions import ConfigError
from services.common.pseudonym import Discloser, DisclosureError, Key, Pseudonymizer, generate_key_text, parse_key


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


# HMAC-SHA256(key, domain ":" value)[:32 hex], computed independently with
# `printf 'msisdn:+31612345678' | openssl dgst -sha256 -hmac 'fraudradar-known-answer-key-32b!'`
KNOWN_ANSWERS = [
    ("msisdn", "+31612345678", "c76c8005aa5a58117e3da0ee8cbb5608"),
    ("imsi", "204081234567890", "6f794645a29fe901437b3d9ae84830ab"),
    ("imei", "35391110116475", "f22cee768b35dd7825a5035c25cd891e"),
]


@pytest.mark.parametrize(("domain", "value", "expected"), KNOWN_ANSWERS)
def test_pseudonym_known_answer(domain: str, value: str, expected: str) -> None:
    # a constant key (a plain hash), another digest, another separator or truncation all fail
    pseudonymize = Pseudonymizer(parse_key("kat:" + base64.b64encode(b"fraudradar-known-answer-key-32b!").decode()))
    assert pseudonymize(domain, value) == expected  # type: ignore[arg-type]
    assert pseudonymize(domain, value) == expected  # type: ignore[arg-type]  # the cached path too


def test_pseudonym_depends_on_every_byte_of_the_key() -> None:
    first = b"fraudradar-known-answer-key-32b!"
    flipped = first[:-1] + b"?"
    a = Pseudonymizer(parse_key("a:" + base64.b64encode(first).decode()))
    b = Pseudonymizer(parse_key("b:" + base64.b64encode(flipped).decode()))
    assert a("msisdn", "+31612345678") != b("msisdn", "+31612345678")


def test_key_shorter_than_16_bytes_is_refused_and_16_is_taken() -> None:
    with pytest.raises(ConfigError, match="too short"):
        parse_key("s:" + base64.b64encode(b"x" * 15).decode())
    assert parse_key(" s:" + base64.b64encode(b"x" * 16).decode() + "\n").secret == b"x" * 16


def test_disclosure_key_sizes() -> None:
    for size in (16, 24, 32):
        Discloser(Key("d", b"d" * size))
    with pytest.raises(ConfigError, match="16, 24 or 32"):
        Discloser(Key("d", b"d" * 20))


def test_disclosure_of_another_key_id_names_both() -> None:
    token = Discloser(Key("d1", b"d" * 32)).seal("+31612345678", "aaaa")
    assert token.startswith("d1.")
    with pytest.raises(DisclosureError, match="'d1'.*'d2'"):
        Discloser(Key("d2", b"d" * 32)).open(token, "aaaa")
    with pytest.raises(DisclosureError, match="does not open"):
        Discloser(Key("d1", b"d" * 32)).open("d1.!!notbase64", "aaaa")
