"""Pseudonyms and disclosure encryption (docs/privacy.md).

A pseudonym is ``HMAC-SHA256(key, domain ":" normalised value)`` truncated to 128 bits, as 32
lowercase hex characters. Domains keep a number and an IMSI with the same digits apart. A
plain hash is not allowed: the Dutch mobile range (~10^8 numbers) can be enumerated in a minute.

Keys come from a file or an environment variable, never from code or logs. A key file holds
``KEY_ID:BASE64KEY`` (32 random bytes); ``key_id`` travels with every view so a rotation can be
recognised. The disclosure key is separate and held only by ingest and api: it encrypts the
E.164 with AES-256-GCM (associated data = the pseudonym, so a ciphertext cannot be moved onto
another entity's record).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.exceptions import ConfigError, FraudradarError

Domain = Literal["msisdn", "imei", "imsi", "cell"]
PSEUDONYM_HEX_LEN = 32


class DisclosureError(FraudradarError):
    """A disclosure ciphertext could not be decrypted (wrong key, tampered, wrong entity)."""


@dataclass(frozen=True)
class Key:
    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ConfigError(f"key {self.key_id!r} is too short: at least 16 bytes are needed")


def parse_key(text: str, name: str = "key") -> Key:
    """Parse ``KEY_ID:BASE64`` (whitespace around it is ignored)."""
    text = text.strip()
    if ":" not in text:
        raise ConfigError(f"{name} must look like KEY_ID:BASE64KEY")
    key_id, b64 = text.split(":", 1)
    try:
        secret = base64.b64decode(b64, validate=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}: the part after ':' is not base64") from exc
    return Key(key_id=key_id, secret=secret)


def generate_key_text(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def load_key(env_var: str, file_env_var: str, name: str) -> Key:
    """Load a key from ``$file_env_var`` (a path) or ``$env_var`` (the text)."""
    path = os.environ.get(file_env_var)
    if path:
        try:
            return parse_key(Path(path).read_text(), name)
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read key file named by {file_env_var}: {exc.strerror}") from exc
    text = os.environ.get(env_var)
    if text:
        return parse_key(text, name)
    raise ConfigError(f"{name} is not configured: set {file_env_var} (a file) or {env_var}")


class Pseudonymizer:
    """Turns normalised identifiers into pseudonyms; cached because numbers repeat a lot."""

    def __init__(self, key: Key, cache_size: int = 1 << 18) -> None:
        self.key_id = key.key_id
        secret = key.secret
        base = hmac.new(secret, digestmod=hashlib.sha256)

        def compute(domain_value: str) -> str:
            h = base.copy()
            h.update(domain_value.encode())
            return h.hexdigest()[:PSEUDONYM_HEX_LEN]

        self._cached = lru_cache(maxsize=cache_size)(compute)

    def __call__(self, domain: Domain, value: str) -> str:
        return self._cached(f"{domain}:{value}")


class Discloser:
    """AES-256-GCM over the E.164, bound to its pseudonym; text is ``key_id.b64(nonce|ct)``.

    ``seal`` is cached per (number, pseudonym): a number keeps one ciphertext for the life of
    the process, which reveals nothing the pseudonym does not already reveal (equality), and
    saves an AEAD operation per view on the hot path.
    """

    def __init__(self, key: Key, cache_size: int = 1 << 18) -> None:
        if len(key.secret) not in (16, 24, 32):
            raise ConfigError("disclosure key must be 16, 24 or 32 bytes")
        self.key_id = key.key_id
        self._aead = AESGCM(key.secret)
        self._cached_seal = lru_cache(maxsize=cache_size)(self._seal)

    def seal(self, e164: str, pseudonym: str) -> str:
        return self._cached_seal(e164, pseudonym)

    def _seal(self, e164: str, pseudonym: str) -> str:
        nonce = secrets.token_bytes(12)
        ct = self._aead.encrypt(nonce, e164.encode(), pseudonym.encode())
        return f"{self.key_id}.{base64.urlsafe_b64encode(nonce + ct).decode().rstrip('=')}"

    def open(self, token: str, pseudonym: str) -> str:
        key_id, _, body = token.rpartition(".")      # the body (base64url) has no ".", a key id may
        if key_id != self.key_id:
            raise DisclosureError(f"sealed under key {key_id!r}, this process holds {self.key_id!r}")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return self._aead.decrypt(raw[:12], raw[12:], pseudonym.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise DisclosureError("disclosure token does not open for this entity") from exc
