import base64
from pathlib import Path

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
    with pytest.raises(DisclosureError, match=r"'d1'.*'d2'"):
        Discloser(Key("d2", b"d" * 32)).open(token, "aaaa")
    with pytest.raises(DisclosureError, match="does not open"):
        Discloser(Key("d1", b"d" * 32)).open("d1.!!notbase64", "aaaa")


def test_key_text_errors_say_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match=r"^key must look like KEY_ID:BASE64KEY$"):
        parse_key("nocolon")
    with pytest.raises(ConfigError, match=r"^disclosure key must look like KEY_ID:BASE64KEY$"):
        parse_key("nocolon", "disclosure key")
    good = base64.b64encode(b"k" * 32).decode()
    for text in (f"id:{good}!!", f"id:x:{good}", f"a:b:{good}"):      # garbage after, a second ':'
        with pytest.raises(ConfigError, match=r"^key: the part after ':' is not base64$"):
            parse_key(text)
    assert parse_key(f"id:{good}") == Key("id", b"k" * 32)


def test_generated_key_text_is_32_random_bytes() -> None:
    key = parse_key(generate_key_text("g1"))
    assert key.key_id == "g1" and len(key.secret) == 32
    assert parse_key(generate_key_text("g1")).secret != key.secret


def test_load_key_from_a_file_or_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from services.common.pseudonym import load_key

    text = generate_key_text("fromenv")
    monkeypatch.delenv("T_KEY_FILE", raising=False)
    monkeypatch.setenv("T_KEY", text)
    assert load_key("T_KEY", "T_KEY_FILE", "test key") == parse_key(text)
    file_text = generate_key_text("fromfile")
    (tmp_path / "key").write_text(file_text + "\n")
    monkeypatch.setenv("T_KEY_FILE", str(tmp_path / "key"))
    assert load_key("T_KEY", "T_KEY_FILE", "test key") == parse_key(file_text)     # the file wins
    (tmp_path / "key").write_text("broken")
    with pytest.raises(ConfigError, match=r"^test key must look like"):
        load_key("T_KEY", "T_KEY_FILE", "test key")
    monkeypatch.setenv("T_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match=r"^test key: cannot read key file named by T_KEY_FILE: No such file"):
        load_key("T_KEY", "T_KEY_FILE", "test key")
    monkeypatch.delenv("T_KEY_FILE")
    monkeypatch.setenv("T_KEY", "broken")
    with pytest.raises(ConfigError, match=r"^test key must look like"):
        load_key("T_KEY", "T_KEY_FILE", "test key")
    monkeypatch.delenv("T_KEY")
    with pytest.raises(ConfigError, match=r"^test key is not configured: set T_KEY_FILE \(a file\) or T_KEY$"):
        load_key("T_KEY", "T_KEY_FILE", "test key")


def test_caches_are_bounded() -> None:
    # numbers repeat a lot, but an attacker's stream of fresh numbers must not grow memory without bound
    pseudonymize = Pseudonymizer(Key("k", b"k" * 32), cache_size=2)
    discloser = Discloser(Key("d", b"d" * 32), cache_size=2)
    for i in range(5):
        pseudonymize("msisdn", f"+3161234567{i}")
        discloser.seal(f"+3161234567{i}", f"p{i}")
    assert pseudonymize._cached.cache_info().currsize == 2
    assert discloser._cached_seal.cache_info().currsize == 2


def test_sealed_tokens_round_trip_for_every_length_and_carry_no_padding() -> None:
    # 8..15 digit numbers give every base64 remainder; tokens are key_id "." base64url without "="
    discloser = Discloser(Key("d.2026", b"d" * 32), cache_size=1)      # a key id may contain "."
    for i in range(2400):
        number = "+31" + str(10**7 + i * 7919)[: 5 + i % 8]
        pseudonym = f"p{i}"
        token = discloser.seal(number, pseudonym)
        assert token.startswith("d.2026.") and "=" not in token
        assert discloser.open(token, pseudonym) == number


def test_disclosure_errors_are_exact() -> None:
    with pytest.raises(ConfigError, match=r"^disclosure key must be 16, 24 or 32 bytes$"):
        Discloser(Key("d", b"d" * 20))
    token = Discloser(Key("d1", b"d" * 32)).seal("+31612345678", "aaaa")
    with pytest.raises(DisclosureError, match=r"^disclosure token does not open for this entity$"):
        Discloser(Key("d1", b"d" * 32)).open(token, "bbbb")
