"""Access tokens in process (no broker, no server): client authentication, issuing, verifying,
rotation, private_key_jwt assertions and their replay guard. The HTTP side is in test_lookups."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from services.api.exceptions import OAuthError, Unauthenticated
from services.api.partners import Partner, PartnerRegistry, hash_secret
from services.api.tokens import ASSERTION_TYPE, TokenService, _TTLCache, generate_signing_key_pem
from services.common.exceptions import ConfigError

SECRET = "bank-x-secret-0123456789"
ENDPOINT = "https://api.example/oauth2/token"
CLIENT_KEY = ec.generate_private_key(ec.SECP256R1())


def _client_jwks() -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(CLIENT_KEY.public_key()))
    return {"keys": [{**jwk, "kid": "client-1"}]}


SECRET_HASH = hash_secret(SECRET)         # scrypt: computed once
PARTNERS = [
    Partner.model_validate({"id": "bank-x", "type": "bank", "client_secret_hash": SECRET_HASH}),
    Partner.model_validate({"id": "ops", "type": "operator", "client_secret_hash": SECRET_HASH,
                            "purposes": ["dpv:FraudPreventionAndDetection", "dpv:ServiceProvision"]}),
    Partner.model_validate({"id": "jwt-bank", "type": "bank", "jwks": _client_jwks()}),
]


def registry() -> PartnerRegistry:
    return PartnerRegistry(PARTNERS)


def key_file(tmp_path: Path, name: str = "signing.pem") -> str:
    path = tmp_path / name
    path.write_bytes(generate_signing_key_pem())
    return str(path)


def service(tmp_path: Path, **kw: Any) -> TokenService:
    args: dict[str, Any] = {"signing_key_file": key_file(tmp_path), "issuer": "fraudradar",
                            "audience": "fraudradar-api", "ttl_s": 900, "token_endpoint": ENDPOINT, **kw}
    return TokenService(registry(), **args)


def partner(tokens: TokenService, pid: str) -> Partner:
    found = tokens.partners.get(pid)
    assert found is not None
    return found


def test_issue_and_verify_round_trip(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    bank = partner(tokens, "bank-x")
    token, issued = tokens.issue(bank, "risk:numbers alerts:read", None)
    assert issued.scopes == frozenset({"risk:numbers", "alerts:read"})
    assert issued.purpose == "dpv:FraudPreventionAndDetection"
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt" and header["kid"] == tokens.jwks()["keys"][0]["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"]
    assert (claims["iss"], claims["aud"], claims["sub"], claims["client_id"]) == (
        "fraudradar", "fraudradar-api", "bank-x", "bank-x")
    assert claims["scope"] == "alerts:read risk:numbers" and claims["partner_type"] == "bank"
    verified = tokens.verify(token)
    assert verified.partner.id == "bank-x" and verified.scopes == issued.scopes
    assert verified.token_id == issued.token_id == claims["jti"]
    assert verified.expires_at == issued.expires_at == float(claims["exp"])
    assert tokens.verify(token) == verified                       # the cached path gives the same


def test_no_scope_requested_means_everything_granted(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    bank = partner(tokens, "bank-x")
    _, issued = tokens.issue(bank, None, None)
    assert issued.scopes == bank.granted


@pytest.mark.parametrize("scope", ["risk:devices", "risk:numbers risk:devices", "nonsense"])
def test_scope_beyond_the_grant_is_refused(tmp_path: Path, scope: str) -> None:
    tokens = service(tmp_path)
    with pytest.raises(OAuthError) as err:
        tokens.issue(partner(tokens, "bank-x"), scope, None)
    assert (err.value.status, err.value.oauth_error) == (400, "invalid_scope")


def test_purpose_must_be_one_declared(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    ops = partner(tokens, "ops")
    with pytest.raises(OAuthError, match="declare exactly one purpose"):
        tokens.issue(ops, None, None)                     # two declared: the client must choose
    with pytest.raises(OAuthError, match="not declared"):
        tokens.issue(ops, None, "dpv:Marketing")
    _, issued = tokens.issue(ops, None, "dpv:ServiceProvision")
    assert issued.purpose == "dpv:ServiceProvision"
    with pytest.raises(OAuthError, match="not declared"):
        tokens.issue(partner(tokens, "bank-x"), None, "dpv:ServiceProvision")


def test_client_secret_authentication(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    ok = tokens.authenticate_client(client_id="bank-x", client_secret=SECRET, assertion_type=None, assertion=None)
    assert ok.id == "bank-x"
    for client_id, secret in (("bank-x", SECRET + "x"), ("nobody", SECRET), ("bank-x", None), (None, SECRET),
                              ("jwt-bank", SECRET)):
        with pytest.raises(OAuthError) as err:
            tokens.authenticate_client(client_id=client_id, client_secret=secret, assertion_type=None,
                                       assertion=None)
        assert (err.value.status, err.value.oauth_error) == (401, "invalid_client")


def _assertion(**claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "jwt-bank", "sub": "jwt-bank", "aud": ENDPOINT, "exp": now + 120, "jti": uuid.uuid4().hex,
            **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, CLIENT_KEY, algorithm="ES256",
                      headers={"kid": "client-1"})


def _authenticate(tokens: TokenService, assertion: str, client_id: str | None = None) -> Partner:
    return tokens.authenticate_client(client_id=client_id, client_secret=None, assertion_type=ASSERTION_TYPE,
                                      assertion=assertion)


def test_private_key_jwt_and_its_replay_guard(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    assertion = _assertion()
    assert _authenticate(tokens, assertion).id == "jwt-bank"
    with pytest.raises(OAuthError, match="client authentication failed"):
        _authenticate(tokens, assertion)
    assert _authenticate(tokens, _assertion(aud="fraudradar"), client_id="jwt-bank").id == "jwt-bank"


@pytest.mark.parametrize(("claims", "message"), [
    # one text for every failed client authentication (it must not tell which check failed)
    ({"sub": "bank-x"}, "client authentication failed"),
    ({"exp": int(time.time()) + 3600}, "client authentication failed"),
    ({"aud": "https://elsewhere/token"}, "client authentication failed"),
    ({"jti": None}, "client authentication failed"),
    ({"iss": "bank-x", "sub": "bank-x"}, "client authentication failed"),      # no jwks for this client
])
def test_bad_assertions_are_refused(tmp_path: Path, claims: dict[str, Any], message: str) -> None:
    with pytest.raises(OAuthError, match=message):
        _authenticate(service(tmp_path), _assertion(**claims))


def test_assertion_for_another_client_id_or_type_or_key(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    with pytest.raises(OAuthError, match="client authentication failed"):
        _authenticate(tokens, _assertion(), client_id="bank-x")
    with pytest.raises(OAuthError, match="jwt-bearer"):
        tokens.authenticate_client(client_id=None, client_secret=None, assertion_type="basic", assertion=_assertion())
    with pytest.raises(OAuthError, match="client authentication failed"):
        _authenticate(tokens, "not-a-jwt")
    other = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    forged = jwt.encode({"iss": "jwt-bank", "sub": "jwt-bank", "aud": ENDPOINT, "exp": now + 60, "jti": "f"},
                        other, algorithm="ES256", headers={"kid": "client-1"})
    with pytest.raises(OAuthError, match="client authentication failed"):
        _authenticate(tokens, forged)
    unknown_kid = jwt.encode({"iss": "jwt-bank", "sub": "jwt-bank", "aud": ENDPOINT, "exp": now + 60, "jti": "g"},
                             CLIENT_KEY, algorithm="ES256", headers={"kid": "client-9"})
    with pytest.raises(OAuthError, match="client authentication failed"):
        _authenticate(tokens, unknown_kid)


def test_verify_refuses_what_it_must(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    bank = partner(tokens, "bank-x")
    with pytest.raises(Unauthenticated, match="Malformed"):
        tokens.verify("garbage")
    stranger = service(tmp_path, signing_key_file=key_file(tmp_path, "stranger.pem"))
    foreign, _ = stranger.issue(bank, None, None)
    with pytest.raises(Unauthenticated, match="not signed by a known key"):
        tokens.verify(foreign)
    short = service(tmp_path, ttl_s=-10)
    expired, _ = short.issue(bank, None, None)
    with pytest.raises(Unauthenticated, match="expired"):
        short.verify(expired)
    shared = key_file(tmp_path, "shared.pem")
    for other in ({"audience": "someone-else"}, {"issuer": "someone-else"}):
        token, _ = service(tmp_path, signing_key_file=shared, **other).issue(bank, None, None)
        with pytest.raises(Unauthenticated, match="Invalid access token"):
            service(tmp_path, signing_key_file=shared).verify(token)        # same key, another aud/iss


def test_previous_key_still_verifies_after_rotation(tmp_path: Path) -> None:
    old_file = key_file(tmp_path, "old.pem")
    old = service(tmp_path, signing_key_file=old_file)
    token, _ = old.issue(partner(old, "bank-x"), None, None)
    rotated = service(tmp_path, signing_key_file=key_file(tmp_path, "new.pem"), previous_key_file=old_file)
    assert rotated.verify(token).partner.id == "bank-x"
    assert [k["kid"] for k in rotated.jwks()["keys"]][1] == old.jwks()["keys"][0]["kid"]
    fresh, _ = rotated.issue(partner(rotated, "bank-x"), None, None)
    with pytest.raises(Unauthenticated):
        old.verify(fresh)


def test_jwk_kid_is_the_rfc7638_thumbprint(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    jwk = tokens.jwks()["keys"][0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in jwk                                           # never the private part
    thumbprint = jwt.PyJWK(jwk).key
    assert thumbprint is not None
    import base64
    import hashlib

    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    assert jwk["kid"] == base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
    again = TokenService(registry(), signing_key_file=str(tmp_path / "signing.pem"), issuer="fraudradar",
                         audience="fraudradar-api", ttl_s=900, token_endpoint=ENDPOINT)
    assert again.jwks() == tokens.jwks()                            # stable across restarts


def test_claims_naming_no_partner_or_purpose(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    key = tokens._key
    kid = tokens.jwks()["keys"][0]["kid"]
    now = int(time.time())
    base = {"iss": "fraudradar", "aud": "fraudradar-api", "exp": now + 60, "scope": "risk:numbers"}
    fraud = "dpv:FraudPreventionAndDetection"
    for claims, message in (({**base, "sub": "ghost", "purpose": fraud}, "no known partner"),
                            ({**base, "sub": "bank-x", "purpose": "dpv:Marketing"}, "one permitted purpose")):
        token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})
        with pytest.raises(Unauthenticated, match=message):
            tokens.verify(token)
    # scopes in the token beyond the partner's grant are dropped
    token = jwt.encode({**base, "sub": "bank-x", "purpose": "dpv:FraudPreventionAndDetection",
                        "scope": "risk:numbers risk:devices"}, key, algorithm="ES256", headers={"kid": kid})
    assert tokens.verify(token).scopes == frozenset({"risk:numbers"})


def test_no_token_source_and_bad_keys_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no token source"):
        TokenService(registry(), signing_key_file=None, issuer="i", audience="a", ttl_s=900, token_endpoint=ENDPOINT)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="cannot load token signing key"):
        service(tmp_path, signing_key_file=str(bad))
    without_issuing = TokenService(registry(), signing_key_file=None, issuer="i", audience="a", ttl_s=900,
                                   token_endpoint=ENDPOINT, jwks_url="http://127.0.0.1:9/jwks")
    assert not without_issuing.issues_tokens
    with pytest.raises(OAuthError, match="external IdP"):
        without_issuing.issue(partner(without_issuing, "bank-x"), None, None)


def test_ttl_cache_expires_and_is_bounded() -> None:
    cache = _TTLCache(2)
    cache.put("a", 1, expires_at=100.0)
    assert cache.get("a", 99.9) == 1 and cache.get("a", 100.0) is None
    cache.put("b", 2, expires_at=200.0)
    cache.put("c", 3, expires_at=200.0)
    assert cache.get("a", 50.0) is None and cache.get("b", 50.0) == 2 and cache.get("c", 50.0) == 3


def _oauth(call: Any) -> tuple[int, str, str]:
    with pytest.raises(OAuthError) as err:
        call()
    return err.value.status, err.value.oauth_error, err.value.message


def test_every_oauth_error_is_exact(tmp_path: Path) -> None:
    """Status, RFC 6749 error and message of each refusal (a client acts on the error code)."""
    tokens = service(tmp_path)
    bank, ops = partner(tokens, "bank-x"), partner(tokens, "ops")
    external = TokenService(registry(), signing_key_file=None, issuer="i", audience="a", ttl_s=900,
                            token_endpoint=ENDPOINT, jwks_url="http://127.0.0.1:9/jwks")
    now = int(time.time())
    other_key = ec.generate_private_key(ec.SECP256R1())
    cases: list[tuple[Any, tuple[int, str, str]]] = [
        (lambda: external.issue(bank, None, None),
         (400, "unsupported_grant_type", "this deployment takes tokens from an external IdP")),
        (lambda: tokens.issue(bank, "risk:devices", None),
         (400, "invalid_scope", "requested scope is not granted to this client")),
        (lambda: tokens.issue(ops, None, None),
         (400, "invalid_request", "declare exactly one purpose (form field 'purpose')")),
        (lambda: tokens.issue(bank, None, "dpv:Marketing"),
         (400, "invalid_request", "this purpose is not declared for this client")),
        (lambda: tokens.authenticate_client(client_id="bank-x", client_secret="wrong-secret-0123456789",
                                            assertion_type=None, assertion=None),
         (401, "invalid_client", "client authentication failed")),
        (lambda: tokens.authenticate_client(client_id=None, client_secret=None, assertion_type="x",
                                            assertion="y"),
         (400, "invalid_request", "client_assertion_type must be jwt-bearer")),
        (lambda: _authenticate(tokens, "not-a-jwt"), (401, "invalid_client", "client authentication failed")),
        (lambda: _authenticate(tokens, _assertion(sub="bank-x")),
         (401, "invalid_client", "client authentication failed")),
        (lambda: _authenticate(tokens, _assertion(exp=now + 3600)),
         (401, "invalid_client", "client authentication failed")),
        (lambda: _authenticate(tokens, jwt.encode({"iss": "jwt-bank", "sub": "jwt-bank", "aud": ENDPOINT,
                                                   "exp": now + 60, "jti": "k"}, CLIENT_KEY, algorithm="ES256",
                                                  headers={"kid": "client-9"})),
         (401, "invalid_client", "client authentication failed")),
        (lambda: _authenticate(tokens, jwt.encode({"iss": "jwt-bank", "sub": "jwt-bank", "aud": ENDPOINT,
                                                   "exp": now + 60, "jti": "s"}, other_key, algorithm="ES256",
                                                  headers={"kid": "client-1"})),
         (401, "invalid_client", "client authentication failed")),
    ]
    for call, expected in cases:
        assert _oauth(call) == expected
    replayed = _assertion()
    _authenticate(tokens, replayed)
    assert _oauth(lambda: _authenticate(tokens, replayed)) == (401, "invalid_client",
                                                               "client authentication failed")
    assert _oauth(lambda: _authenticate(tokens, _assertion(aud="https://elsewhere/"))) == (
        401, "invalid_client", "client authentication failed")


def test_every_unauthenticated_message_is_exact(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    bank = partner(tokens, "bank-x")
    stranger, _ = service(tmp_path, signing_key_file=key_file(tmp_path, "s.pem")).issue(bank, None, None)
    expired, _ = service(tmp_path, signing_key_file=key_file(tmp_path, "e.pem"), ttl_s=-10).issue(bank, None, None)
    expired_here = service(tmp_path, signing_key_file=str(tmp_path / "e.pem"))
    key, kid = tokens._key, tokens.jwks()["keys"][0]["kid"]
    now = int(time.time())
    base = {"iss": "fraudradar", "aud": "fraudradar-api", "exp": now + 60, "scope": "risk:numbers",
            "purpose": "dpv:FraudPreventionAndDetection"}
    for verify, token, message in (
        (tokens, "garbage", "Malformed access token."),
        (tokens, stranger, "Access token is not signed by a known key."),
        (expired_here, expired, "Access token expired."),
        (tokens, jwt.encode({**base, "sub": "bank-x", "aud": "x"}, key, algorithm="ES256", headers={"kid": kid}),
         "Invalid access token."),
        (tokens, jwt.encode({**base, "sub": "ghost"}, key, algorithm="ES256", headers={"kid": kid}),
         "Access token names no known partner."),
        (tokens, jwt.encode({**base, "sub": "bank-x", "purpose": 7}, key, algorithm="ES256", headers={"kid": kid}),
         "Access token must declare exactly one permitted purpose."),
    ):
        with pytest.raises(Unauthenticated) as err:
            verify.verify(token)
        assert err.value.message == message


def test_issued_principal_names_the_partner(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    bank = partner(tokens, "bank-x")
    _, issued = tokens.issue(bank, None, None)
    assert issued.partner is bank


def test_local_tokens_must_carry_the_required_claims(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    key, kid = tokens._key, tokens.jwks()["keys"][0]["kid"]
    full = {"iss": "fraudradar", "aud": "fraudradar-api", "exp": int(time.time()) + 60, "sub": "bank-x",
            "scope": "risk:numbers", "purpose": "dpv:FraudPreventionAndDetection"}
    assert tokens.verify(jwt.encode(full, key, algorithm="ES256", headers={"kid": kid})).partner.id == "bank-x"
    for claim in ("exp", "sub", "scope", "purpose", "iss"):
        token = jwt.encode({k: v for k, v in full.items() if k != claim}, key, algorithm="ES256", headers={"kid": kid})
        with pytest.raises(Unauthenticated):
            tokens.verify(token)


class _Jwks:
    """A real JWKS endpoint on loopback (an external IdP's published keys)."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        import http.server
        import threading

        body = json.dumps(jwks).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_external_idp_tokens(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    idp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(idp_key.public_key()))
    server = _Jwks({"keys": [{**jwk, "kid": "idp-1", "use": "sig", "alg": "RS256"}]})
    try:
        tokens = TokenService(registry(), signing_key_file=None, issuer="fraudradar", audience="fraudradar-api",
                              ttl_s=900, token_endpoint=ENDPOINT, jwks_url=server.url,
                              external_issuer="https://idp.example")
        now = int(time.time())
        base = {"iss": "https://idp.example", "aud": "fraudradar-api", "exp": now + 60,
                "purpose": "dpv:FraudPreventionAndDetection"}

        def token(**claims: Any) -> str:
            return jwt.encode({**base, **claims}, idp_key, algorithm="RS256", headers={"kid": "idp-1"})

        # the partner from client_id, else azp, else sub; scopes from "scope" or "scp", cut to the grant
        assert tokens.verify(token(client_id="bank-x", sub="u1", scope="risk:numbers risk:devices")).scopes == \
            frozenset({"risk:numbers"})
        assert tokens.verify(token(azp="bank-x", sub="u2", scp=["alerts:read"])).scopes == frozenset({"alerts:read"})
        principal = tokens.verify(token(sub="bank-x", jti="j-1"))
        assert principal.partner.id == "bank-x" and principal.scopes == frozenset() and principal.token_id == "j-1"
        assert principal.expires_at == float(base["exp"]) and principal.purpose == base["purpose"]
        assert tokens.verify(token(sub="bank-x")).token_id == ""
        for bad, message in ((token(sub="bank-x", iss="https://other.example"), "Invalid access token."),
                             (token(sub="bank-x", aud="someone-else"), "Invalid access token."),
                             (token(sub="bank-x", exp=now - 120), "Access token expired."),
                             (token(sub="ghost"), "Access token names no known partner.")):
            with pytest.raises(Unauthenticated) as err:
                tokens.verify(bad)
            assert err.value.message == message
    finally:
        server.close()
