"""Access tokens: issue (OAuth2 client credentials), verify, publish the JWKS.

Tokens are ES256 JWTs made and checked with PyJWT. Every replica loads the same signing key
file, so a token from one replica verifies at any other. Tokens from an external IdP are
accepted too when ``FRAUDRADAR_JWKS_URL`` is set; they must name a configured partner in
``client_id``/``azp``/``sub`` and carry ``scope`` and ``purpose`` claims. Either way the
effective scopes are the token's scopes intersected with what the partner config grants, and a
token carries exactly one declared purpose.

Clients authenticate at the token endpoint with a client secret (HTTP Basic or form) or with
``private_key_jwt`` (RFC 7523): a short-lived JWT signed by the partner's own key, whose
``jti`` is remembered until it expires so an assertion cannot be replayed, on any replica
(used assertions go to ``fraudradar.partner-state``; two replicas given the same assertion
within the materialise delay, milliseconds, could both take it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.api.exceptions import OAuthError, Unauthenticated
from services.api.partners import Partner, PartnerRegistry
from services.common.exceptions import ConfigError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
ASSERTION_MAX_LIFETIME_S = 600
CLIENT_AUTH_FAILED = "client authentication failed"
"""The one answer to every failed client authentication: it never tells which id exists, which
check failed or what a library said (docs/api.md "Token endpoint")."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the partner, the scopes this token may use and its one purpose."""

    partner: Partner
    scopes: frozenset[str]
    purpose: str
    token_id: str
    expires_at: float


def generate_signing_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_ec_key(path: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load token signing key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"token signing key {path} must be an EC P-256 private key")
    return key


def _public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    # RFC 7638 thumbprint as the key id: stable across replicas and restarts.
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
    )
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
    return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}


class _TTLCache:
    """A small bounded map whose entries vanish at their own expiry time."""

    def __init__(self, max_items: int) -> None:
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._max = max_items
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> Any | None:
        item = self._items.get(key)
        if item is None or item[0] <= now:
            return None
        return item[1]

    def put(self, key: str, value: Any, expires_at: float) -> None:
        with self._lock:
            self._items[key] = (expires_at, value)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def __contains__(self, key: str) -> bool:
        return self.get(key, time.time()) is not None


class TokenService:
    """Issues and verifies access tokens; holds the signing key and the optional external JWKS."""

    def __init__(
        self,
        partners: PartnerRegistry,
        *,
        signing_key_file: str | None,
        issuer: str,
        audience: str,
        ttl_s: int,
        token_endpoint: str,
        previous_key_file: str | None = None,
        jwks_url: str | None = None,
        external_issuer: str | None = None,
    ) -> None:
        self.partners = partners
        self.issuer, self.audience, self.ttl_s = issuer, audience, ttl_s
        self.token_endpoint = token_endpoint
        self._key = _load_ec_key(signing_key_file) if signing_key_file else None
        self._jwks: list[dict[str, Any]] = []
        if self._key is not None:
            self._jwk = _public_jwk(self._key)
            self._jwks.append(self._jwk)
        if previous_key_file:
            self._jwks.append(_public_jwk(_load_ec_key(previous_key_file)))
        self._local_keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in self._jwks}
        self._external = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self._external_issuer = external_issuer
        self._verified = _TTLCache(100_000)
        self._seen_assertions = _TTLCache(100_000)
        # Secrets that verified recently (keyed by a hash of id and secret): a partner's repeated
        # token requests cost one scrypt per hour, not one each. Failures are never cached.
        self._good_secrets = _TTLCache(10_000)
        # Replay protection shared by the replicas (set by the app: fraudradar.partner-state)
        self.assertion_used_elsewhere: Callable[[str], bool] = lambda _key: False
        self.on_assertion_used: Callable[[str, str, float], None] = lambda _p, _j, _e: None
        # A secret of an unknown id is never hashed: its failure waits as long as one scrypt
        # verification takes (measured once here, against a real hash made at start) and
        # answers exactly what a wrong secret of a known id does, at no CPU cost.
        from services.api.partners import hash_secret, verify_secret

        dummy = hash_secret(secrets.token_urlsafe(24))
        started = time.perf_counter()
        verify_secret(secrets.token_urlsafe(24), dummy)
        self.unknown_client_delay_s = time.perf_counter() - started
        if self._key is None and self._external is None:
            raise ConfigError("no token source: set FRAUDRADAR_SIGNING_KEY_FILE and/or FRAUDRADAR_JWKS_URL")

    @property
    def issues_tokens(self) -> bool:
        return self._key is not None

    def jwks(self) -> dict[str, Any]:
        return {"keys": list(self._jwks)}

    # -- token endpoint ------------------------------------------------------------------

    def needs_secret_check(self, client_id: str | None, assertion: str | None) -> bool:
        """Whether a request is a secret check of a known client (the costly path)."""
        partner = self.partners.get(client_id) if client_id and assertion is None else None
        return partner is not None and partner.client_secret_hash is not None

    def authenticate_client(
        self,
        *,
        client_id: str | None,
        client_secret: str | None,
        assertion_type: str | None,
        assertion: str | None,
    ) -> Partner:
        """Check the client's credentials; raise ``OAuthError(invalid_client)`` on any failure."""
        from services.api.partners import verify_secret

        if assertion is not None or assertion_type is not None:
            if assertion_type != ASSERTION_TYPE or not assertion:
                raise OAuthError(400, "invalid_request", "client_assertion_type must be jwt-bearer")
            return self._verify_assertion(assertion, client_id)
        if not client_id or client_secret is None:
            raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED)
        partner = self.partners.get(client_id)
        if partner is None or partner.client_secret_hash is None:
            raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED)
        stored = partner.client_secret_hash
        memo = hashlib.sha256(f"{client_id}\0{client_secret}\0{stored}".encode()).hexdigest()
        now = time.time()
        if self._good_secrets.get(memo, now) is None:
            if not verify_secret(client_secret, stored):
                raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED)
            self._good_secrets.put(memo, True, now + 3600)
        return partner

    def _verify_assertion(self, assertion: str, client_id: str | None) -> Partner:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED) from exc
        issuer = unverified.get("iss")
        partner = self.partners.get(str(issuer)) if isinstance(issuer, str) else None
        if partner is None or partner.jwks is None or (client_id and client_id != partner.id):
            raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED)
        try:
            keyset = jwt.PyJWKSet.from_dict(partner.jwks)
            kid = header.get("kid")
            candidates = [k for k in keyset.keys if kid is None or k.key_id == kid]
            if not candidates:
                raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED)
            claims: dict[str, Any] | None = None
            last: Exception | None = None
            for key in candidates:
                try:
                    claims = jwt.decode(
                        assertion,
                        key=key,
                        algorithms=ASSERTION_ALGORITHMS,
                        audience=[self.token_endpoint, self.issuer],
                        options={"require": ["iss", "sub", "aud", "exp", "jti"]},
                        leeway=30,
                    )
                    break
                except jwt.InvalidSignatureError as exc:
                    last = exc
            if claims is None:
                raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED) from last
        except jwt.PyJWTError as exc:
            raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED) from exc
        if claims["sub"] != partner.id:
            raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED)
        now = time.time()
        if float(claims["exp"]) - now > ASSERTION_MAX_LIFETIME_S:
            raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED)
        replay_key = f"{partner.id}:{claims['jti']}"
        if replay_key in self._seen_assertions or self.assertion_used_elsewhere(replay_key):
            raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED)
        self._seen_assertions.put(replay_key, True, float(claims["exp"]) + 60)
        self.on_assertion_used(partner.id, str(claims["jti"]), float(claims["exp"]) + 60)
        return partner

    def issue(
        self, partner: Partner, requested_scope: str | None, purpose: str | None
    ) -> tuple[str, Principal]:
        """Make an access token for ``partner`` with the requested scopes and its one purpose."""
        if self._key is None:
            raise OAuthError(
                400, "unsupported_grant_type", "this deployment takes tokens from an external IdP"
            )
        scopes = frozenset(requested_scope.split()) if requested_scope else partner.granted
        if not scopes or not scopes <= partner.granted:
            raise OAuthError(400, "invalid_scope", "requested scope is not granted to this client")
        if purpose is None:
            if len(partner.purposes) != 1:
                raise OAuthError(400, "invalid_request", "declare exactly one purpose (form field 'purpose')")
            purpose = partner.purposes[0]
        if purpose not in partner.purposes:
            raise OAuthError(400, "invalid_request", "this purpose is not declared for this client")
        now = int(time.time())
        token_id = secrets.token_urlsafe(16)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": partner.id,
            "client_id": partner.id,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
            "jti": token_id,
            "scope": " ".join(sorted(scopes)),
            "purpose": purpose,
            "partner_type": partner.type,
        }
        token = jwt.encode(
            claims, self._key, algorithm="ES256", headers={"kid": self._jwk["kid"], "typ": "at+jwt"}
        )
        return token, Principal(partner, scopes, purpose, token_id, float(now + self.ttl_s))

    # -- resource requests ---------------------------------------------------------------

    def verify(self, token: str) -> Principal:
        """Check a bearer token; raise ``Unauthenticated`` with a short, non-revealing reason."""
        now = time.time()
        cached = self._verified.get(token, now)
        if cached is not None:
            principal: Principal = cached
            return principal
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("Malformed access token.") from exc
        kid = header.get("kid")
        local = self._local_keys.get(kid) if isinstance(kid, str) else None
        try:
            if local is not None:
                claims = jwt.decode(
                    token,
                    key=local,
                    algorithms=["ES256"],
                    audience=self.audience,
                    issuer=self.issuer,
                    options={"require": ["exp", "sub", "scope", "purpose"]},
                )
            elif self._external is not None:
                signing_key = self._external.get_signing_key_from_jwt(token)
                claims = jwt.decode(
                    token,
                    key=signing_key,
                    algorithms=["RS256", "PS256", "ES256", "EdDSA"],
                    audience=self.audience,
                    issuer=self._external_issuer,
                    options={"require": ["exp"]},
                )
            else:
                raise Unauthenticated("Access token is not signed by a known key.")
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("Access token expired.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("Invalid access token.") from exc
        principal = self._principal(claims)
        self._verified.put(token, principal, principal.expires_at)
        return principal

    def _principal(self, claims: dict[str, Any]) -> Principal:
        partner_id = claims.get("client_id") or claims.get("azp") or claims.get("sub")
        partner = self.partners.get(str(partner_id)) if partner_id else None
        if partner is None:
            raise Unauthenticated("Access token names no known partner.")
        raw_scope = claims.get("scope", claims.get("scp", ""))
        scopes = frozenset(raw_scope.split() if isinstance(raw_scope, str) else raw_scope)
        purpose = claims.get("purpose")
        if not isinstance(purpose, str) or purpose not in partner.purposes:
            raise Unauthenticated("Access token must declare exactly one permitted purpose.")
        return Principal(
            partner, scopes & partner.granted, purpose, str(claims.get("jti", "")), float(claims["exp"])
        )
