"""Access tokens in process, the finer checks: key loading, the secret-check gate and its memo,
the assertion replay window and who is told about a used assertion, leeways and lifetimes, the
external IdP's algorithms, required claims and JWKS refresh, and the verify memo. The shared
fixtures are in test_tokens."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import services.api.partners as partners_module
import services.api.tokens as tokens_module
from services.api.exceptions import OAuthError, Unauthenticated
from services.api.partners import Partner, PartnerRegistry
from services.api.tokens import ASSERTION_TYPE, CLIENT_AUTH_FAILED, TokenService
from services.common.exceptions import ConfigError
from tests.api.test_tokens import (
    CLIENT_KEY,
    ENDPOINT,
    PARTNERS,
    SECRET,
    _assertion,
    _authenticate,
    _client_jwks,
    _Jwks,
    _oauth,
    key_file,
    partner,
    registry,
    service,
)

FAILED = (401, "invalid_client", CLIENT_AUTH_FAILED)
FRAUD = "dpv:FraudPreventionAndDetection"


class _Clock:
    """The tokens module's clock, set by the test (wall time for the replay memo, the secret memo
    and the assertion lifetime; PyJWT keeps its own real clock for exp/nbf)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.perf_counter = time.perf_counter

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fixed = _Clock(float(int(time.time())))
    monkeypatch.setattr(tokens_module, "time", fixed)
    return fixed


def _pem_file(tmp_path: Path, name: str, key: Any) -> str:
    path = tmp_path / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


# -- configuration ---------------------------------------------------------------------------

def test_signing_key_must_be_ec_p256(tmp_path: Path) -> None:
    for name, key in (("p384.pem", ec.generate_private_key(ec.SECP384R1())),
                      ("rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048))):
        path = _pem_file(tmp_path, name, key)
        with pytest.raises(ConfigError) as err:
            service(tmp_path, signing_key_file=path)
        assert str(err.value) == f"token signing key {path} must be an EC P-256 private key"


def test_no_token_source_message_is_exact() -> None:
    with pytest.raises(ConfigError) as err:
        TokenService(registry(), signing_key_file=None, issuer="i", audience="a", ttl_s=900, token_endpoint=ENDPOINT)
    assert str(err.value) == "no token source: set FRAUDRADAR_SIGNING_KEY_FILE and/or FRAUDRADAR_JWKS_URL"


def test_unknown_client_delay_is_one_measured_scrypt_check(tmp_path: Path) -> None:
    path = key_file(tmp_path)
    started = time.perf_counter()
    tokens = TokenService(registry(), signing_key_file=path, issuer="fraudradar", audience="fraudradar-api",
                          ttl_s=900, token_endpoint=ENDPOINT)
    elapsed = time.perf_counter() - started
    delay = tokens.unknown_client_delay_s
    # one real verification measured inside the constructor: positive and part of its run time
    assert isinstance(delay, float) and 0.0 < delay <= elapsed


# -- the token endpoint: client secrets --------------------------------------------------------

def test_needs_secret_check_only_for_a_known_secret_client(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    assert tokens.needs_secret_check("bank-x", None)
    assert tokens.needs_secret_check("ops", None)
    assert not tokens.needs_secret_check("bank-x", "an-assertion")     # private_key_jwt, no scrypt
    assert not tokens.needs_secret_check("nobody", None)
    assert not tokens.needs_secret_check(None, None)
    assert not tokens.needs_secret_check("", None)
    assert not tokens.needs_secret_check("jwt-bank", None)             # no secret configured


def test_secret_refusals_are_uniform(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    for client_id, secret in ((None, SECRET), ("", SECRET), ("bank-x", None), ("nobody", SECRET),
                              ("jwt-bank", SECRET), ("bank-x", SECRET + "x")):
        assert _oauth(lambda c=client_id, s=secret: tokens.authenticate_client(
            client_id=c, client_secret=s, assertion_type=None, assertion=None)) == FAILED


@pytest.mark.parametrize(("assertion_type", "assertion"), [(ASSERTION_TYPE, None), (ASSERTION_TYPE, ""),
                                                          (None, "x.y.z"), ("basic", "x.y.z")])
def test_half_an_assertion_is_a_bad_request(tmp_path: Path, assertion_type: str | None,
                                            assertion: str | None) -> None:
    tokens = service(tmp_path)
    # with a valid secret too: an assertion field present means private_key_jwt, never the secret
    assert _oauth(lambda: tokens.authenticate_client(client_id="bank-x", client_secret=SECRET,
                                                     assertion_type=assertion_type, assertion=assertion)) == (
        400, "invalid_request", "client_assertion_type must be jwt-bearer")


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the real scrypt verifications at the token endpoint."""
    calls: list[str] = []
    real = partners_module.verify_secret

    def counted(secret: str, stored: str) -> bool:
        calls.append(secret)
        return real(secret, stored)

    monkeypatch.setattr(partners_module, "verify_secret", counted)
    return calls


def _secret(tokens: TokenService, secret: str = SECRET, client_id: str = "bank-x") -> str:
    return tokens.authenticate_client(client_id=client_id, client_secret=secret, assertion_type=None,
                                      assertion=None).id


def test_a_good_secret_is_checked_once_an_hour(tmp_path: Path, clock: _Clock, scrypt_calls: list[str]) -> None:
    tokens = service(tmp_path)
    scrypt_calls.clear()                     # the constructor's own timing check
    start = clock.now
    assert _secret(tokens) == "bank-x" and len(scrypt_calls) == 1
    clock.now = start + 3599.5
    assert _secret(tokens) == "bank-x" and len(scrypt_calls) == 1          # remembered
    assert _secret(tokens, client_id="ops") == "ops" and len(scrypt_calls) == 2   # per client id
    clock.now = start + 3600
    assert _secret(tokens) == "bank-x" and len(scrypt_calls) == 3          # the hour is over: checked again
    # failures are never remembered, and a remembered good secret does not let a wrong one in
    for _ in range(2):
        assert _oauth(lambda: _secret(tokens, SECRET + "x")) == FAILED
    assert len(scrypt_calls) == 5


# -- the token endpoint: private_key_jwt -------------------------------------------------------

def _signed(claims: dict[str, Any], key: Any = CLIENT_KEY, alg: str = "ES256", kid: str = "client-1") -> str:
    # signed as raw JSON: PyJWT's jwt.encode refuses to write a non-string iss
    return jwt.api_jws.encode(json.dumps(claims).encode(), key, algorithm=alg, headers={"kid": kid})


def test_assertion_issuer_refusals_are_exact(tmp_path: Path) -> None:
    numeric = Partner.model_validate({"id": "12", "type": "bank", "jwks": _client_jwks()})
    tokens = TokenService(PartnerRegistry([*PARTNERS, numeric]), signing_key_file=key_file(tmp_path),
                          issuer="fraudradar", audience="fraudradar-api", ttl_s=900, token_endpoint=ENDPOINT)
    now = int(time.time())
    base = {"sub": "jwt-bank", "aud": ENDPOINT, "exp": now + 60}
    for claims, client_id in (({**base, "iss": "ghost"}, None),                    # no such partner
                              ({**base, "iss": "bank-x", "sub": "bank-x"}, None),  # partner without keys
                              ({**base, "iss": "jwt-bank"}, "bank-x"),             # another client's id
                              ({**base, "iss": 12, "sub": "12"}, None),            # iss must be a string
                              ({k: v for k, v in base.items()}, None)):            # no iss at all
        token = _signed({**claims, "jti": uuid.uuid4().hex})
        assert _oauth(lambda t=token, c=client_id: _authenticate(tokens, t, c)) == FAILED
    assert _authenticate(tokens, _signed({**base, "iss": "12", "sub": "12", "jti": "n"})).id == "12"


def test_bad_signature_is_chained_for_the_log(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    forged = _signed({"iss": "jwt-bank", "sub": "jwt-bank", "aud": ENDPOINT, "exp": int(time.time()) + 60,
                      "jti": "f"}, key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(OAuthError) as err:
        _authenticate(tokens, forged)
    assert (err.value.status, err.value.oauth_error, err.value.message) == FAILED
    assert isinstance(err.value.__cause__, jwt.InvalidSignatureError)


def test_assertion_algorithms_are_the_asymmetric_list(tmp_path: Path) -> None:
    """A partner key published for an algorithm outside the list (HMAC, RS384) is never used."""
    hmac_secret = b"0123456789abcdef0123456789abcdef"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwks = {"keys": [{"kty": "oct", "k": base64.urlsafe_b64encode(hmac_secret).decode().rstrip("="),
                      "kid": "hmac", "alg": "HS256"},
                     {**rsa_jwk, "kid": "rs384", "alg": "RS384"},
                     {**rsa_jwk, "kid": "ps256", "alg": "PS256"}]}
    odd = Partner.model_validate({"id": "odd-bank", "type": "bank", "jwks": jwks})
    tokens = TokenService(PartnerRegistry([*PARTNERS, odd]), signing_key_file=key_file(tmp_path),
                          issuer="fraudradar", audience="fraudradar-api", ttl_s=900, token_endpoint=ENDPOINT)

    def claims() -> dict[str, Any]:
        return {"iss": "odd-bank", "sub": "odd-bank", "aud": ENDPOINT, "exp": int(time.time()) + 60,
                "jti": uuid.uuid4().hex}

    assert _oauth(lambda: _authenticate(tokens, _signed(claims(), hmac_secret, "HS256", "hmac"))) == FAILED
    assert _oauth(lambda: _authenticate(tokens, _signed(claims(), rsa_key, "RS384", "rs384"))) == FAILED
    assert _authenticate(tokens, _signed(claims(), rsa_key, "PS256", "ps256")).id == "odd-bank"


def _after_second_start() -> int:
    """The current whole second, waiting for the next one when less than half of it is left (the
    exp leeway boundaries below are whole seconds: PyJWT compares them with its own clock)."""
    now = time.time()
    if now % 1 > 0.5:
        time.sleep(1 - now % 1)
    return int(time.time())


def test_assertion_exp_leeway_is_30_seconds(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    now = _after_second_start()
    assert _authenticate(tokens, _assertion(exp=now - 29)).id == "jwt-bank"
    assert _oauth(lambda: _authenticate(tokens, _assertion(exp=now - 30))) == FAILED


def test_assertion_lifetime_is_at_most_600_seconds(tmp_path: Path, clock: _Clock) -> None:
    tokens = service(tmp_path)
    assert _authenticate(tokens, _assertion(exp=int(clock.now) + 600)).id == "jwt-bank"
    assert _oauth(lambda: _authenticate(tokens, _assertion(exp=int(clock.now) + 601))) == FAILED


def test_used_assertion_is_remembered_until_60s_after_its_expiry(tmp_path: Path, clock: _Clock) -> None:
    tokens = service(tmp_path)
    start = clock.now
    exp = int(start) + 120
    first, second = _assertion(exp=exp), _assertion(exp=exp)
    _authenticate(tokens, first)
    _authenticate(tokens, second)
    clock.now = exp + 59.5                    # expired to the memo's clock, still valid to PyJWT's
    assert _oauth(lambda: _authenticate(tokens, first)) == FAILED
    clock.now = exp + 60
    assert _authenticate(tokens, second).id == "jwt-bank"     # forgotten: exp + leeway has passed


def test_used_assertions_are_shared_with_the_other_replicas(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    used: list[tuple[str, str, float]] = []
    asked: list[str] = []
    tokens.on_assertion_used = lambda pid, jti, until: used.append((pid, jti, until))
    elsewhere = {"jwt-bank:taken"}

    def used_elsewhere(key: str) -> bool:
        asked.append(key)
        return key in elsewhere

    tokens.assertion_used_elsewhere = used_elsewhere
    exp = int(time.time()) + 120
    assert _authenticate(tokens, _assertion(jti="fresh", exp=exp)).id == "jwt-bank"
    assert used == [("jwt-bank", "fresh", float(exp + 60))]
    assert _oauth(lambda: _authenticate(tokens, _assertion(jti="taken", exp=exp))) == FAILED
    assert asked == ["jwt-bank:fresh", "jwt-bank:taken"] and len(used) == 1


# -- issuing -----------------------------------------------------------------------------------

def test_token_id_is_128_random_bits(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    ids = {tokens.issue(partner(tokens, "bank-x"), None, None)[1].token_id for _ in range(3)}
    assert len(ids) == 3
    for token_id in ids:
        assert len(base64.urlsafe_b64decode(token_id + "==")) == 16 and len(token_id) == 22


# -- verifying ---------------------------------------------------------------------------------

def test_a_verified_token_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = service(tmp_path)
    bank = partner(tokens, "bank-x")
    token, _ = tokens.issue(bank, None, None)
    other, _ = tokens.issue(bank, None, None)
    decodes: list[str] = []
    real = jwt.decode

    def counted(*args: Any, **kw: Any) -> Any:
        decodes.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(tokens_module.jwt, "decode", counted)
    first = tokens.verify(token)
    assert tokens.verify(token) is first and decodes == [token]     # one signature check per token
    assert tokens.verify(other) is not first and decodes == [token, other]


class _CountingJwks(_Jwks):
    """The external IdP's JWKS endpoint, counting how often it is fetched."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__(jwks)
        self.fetches = 0
        handler = self.server.RequestHandlerClass
        outer = self

        class Counting(handler):  # type: ignore[misc,valid-type]
            def do_GET(self) -> None:
                outer.fetches += 1
                super().do_GET()

        self.server.RequestHandlerClass = Counting


@pytest.fixture
def idp() -> Iterator[tuple[_CountingJwks, dict[str, Any]]]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    keys = {"rs256": (rsa_key, "RS256"), "ps256": (rsa_key, "PS256"), "rs384": (rsa_key, "RS384"),
            "es256": (ec_key, "ES256"), "eddsa": (ed_key, "EdDSA")}
    published = [{**rsa_jwk, "kid": kid, "alg": alg} for kid, (_, alg) in keys.items() if alg[0] in "RP"]
    published.append({**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "es256",
                      "alg": "ES256"})
    published.append({**json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ed_key.public_key())), "kid": "eddsa",
                      "alg": "EdDSA"})
    server = _CountingJwks({"keys": published})
    try:
        yield server, keys
    finally:
        server.close()


def _external(url: str) -> TokenService:
    return TokenService(registry(), signing_key_file=None, issuer="fraudradar", audience="fraudradar-api",
                        ttl_s=900, token_endpoint=ENDPOINT, jwks_url=url, external_issuer="https://idp.example")


def _idp_token(keys: dict[str, Any], kid: str, **claims: Any) -> str:
    key, alg = keys[kid]
    body = {"iss": "https://idp.example", "aud": "fraudradar-api", "exp": int(time.time()) + 60, "sub": "bank-x",
            "purpose": FRAUD, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg, headers={"kid": kid})


def test_external_idp_algorithms(idp: tuple[_CountingJwks, dict[str, Any]]) -> None:
    server, keys = idp
    tokens = _external(server.url)
    for kid in ("rs256", "ps256", "es256", "eddsa"):
        assert tokens.verify(_idp_token(keys, kid)).partner.id == "bank-x", kid
    with pytest.raises(Unauthenticated) as err:
        tokens.verify(_idp_token(keys, "rs384"))                     # published, but not an allowed algorithm
    assert err.value.message == "Invalid access token."


def test_external_idp_token_must_expire(idp: tuple[_CountingJwks, dict[str, Any]]) -> None:
    server, keys = idp
    with pytest.raises(Unauthenticated) as err:
        _external(server.url).verify(_idp_token(keys, "es256", exp=None))
    assert err.value.message == "Invalid access token."


class _Monotonic:
    """PyJWT's JWKS cache clock, moved forward by the test."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def test_external_jwks_cached_for_five_minutes_and_keys_kept(
        idp: tuple[_CountingJwks, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    server, keys = idp
    clock = _Monotonic()
    monkeypatch.setattr(jwt.jwk_set_cache, "time", clock)
    tokens = _external(server.url)
    tokens.verify(_idp_token(keys, "rs256"))
    assert server.fetches == 1
    clock.offset = 300.5                         # the set is stale now
    tokens.verify(_idp_token(keys, "rs256"))     # a key already looked up is kept: no fetch
    assert server.fetches == 1
    tokens.verify(_idp_token(keys, "es256"))     # a key not looked up yet: the stale set is fetched again
    assert server.fetches == 2


def test_memos_are_bounded(tmp_path: Path) -> None:
    """Each memo keeps a fixed number of entries, the oldest dropped first: a flood of distinct
    tokens, assertions or secrets cannot grow the process without bound."""
    tokens = service(tmp_path)
    for memo, size in ((tokens._verified, 100_000), (tokens._seen_assertions, 100_000),
                       (tokens._good_secrets, 10_000)):
        for i in range(size + 1):
            memo.put(str(i), True, 1e12)
        assert memo.get("0", 0.0) is None and memo.get("1", 0.0) is True and len(memo._items) == size
