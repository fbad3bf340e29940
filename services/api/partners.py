"""Partners: who may call the API, with which scopes, purposes, disclosure tier and limits.

Partners come from a YAML file (``FRAUDRADAR_PARTNERS_FILE``; example in
``partners.example.yaml``). Client secrets are stored only as salted scrypt hashes
(``fraudradar api hash-secret``); a partner using ``private_key_jwt`` lists its public keys as
a JWKS instead. The partner *type* bounds what a config may grant: a bank can never be given
device lookups, however its entry is written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.common.exceptions import ConfigError

PartnerType = Literal["bank", "platform", "telco", "operator"]
DisclosureTier = Literal["level", "score", "reasons", "full"]
TIER_RANK: dict[str, int] = {"level": 0, "score": 1, "reasons": 2, "full": 3}
AlertEntitlement = Literal["all", "watchlist", "none"]

# Scopes, one per family of operations (the OpenAPI document lists them per route).
SCOPES: dict[str, str] = {
    "risk:numbers": "look up the risk of phone numbers",
    "risk:devices": "look up the risk of devices (IMEI)",
    "alerts:read": "read the alert feed and stream",
    "watchlist": "manage the watch-list of numbers",
    "webhooks": "manage webhook subscriptions",
    "reports:write": "report confirmed fraud or false positives",
    "contests:write": "contest a flag",
    "overrides": "clear or pin flags, review contests (operator)",
    "audit:read": "query who looked up a number (operator)",
    "sim-swap": "CAMARA SIM Swap (both operations)",
    "sim-swap:check": "CAMARA SIM Swap check",
    "sim-swap:retrieve-date": "CAMARA SIM Swap retrieve-date",
    "device-swap": "CAMARA Device Swap (both operations)",
    "device-swap:check": "CAMARA Device Swap check",
    "device-swap:retrieve-date": "CAMARA Device Swap retrieve-date",
    "sim-swap-subscriptions:org.camaraproject.sim-swap-subscriptions.v0.swapped:create": (
        "CAMARA SIM Swap Subscriptions: subscribe to SIM swaps of a number"
    ),
    "sim-swap-subscriptions:read": "CAMARA SIM Swap Subscriptions: read your subscriptions",
    "sim-swap-subscriptions:delete": "CAMARA SIM Swap Subscriptions: delete a subscription",
    "call-forwarding-signal:unconditional-call-forwardings:read": (
        "CAMARA Call Forwarding Signal: is unconditional call forwarding active"
    ),
    "call-forwarding-signal:call-forwardings:read": "CAMARA Call Forwarding Signal: the call forwardings active",
    "kyc-tenure:check-tenure": "CAMARA KYC Tenure: check a subscription's tenure",
    "number-recycling:check": "CAMARA Number Recycling: check whether a number was reassigned",
    "call-state:check": "is a customer in a risky call right now (payment-time check)",
    "verified-caller:pre-announce": "CAMARA Verified Caller: pre-announce an outbound call of the bank",
}
_CALLS = ["call-state:check", "verified-caller:pre-announce"]
_CAMARA = [
    "sim-swap",
    "sim-swap:check",
    "sim-swap:retrieve-date",
    "device-swap",
    "device-swap:check",
    "device-swap:retrieve-date",
    "sim-swap-subscriptions:org.camaraproject.sim-swap-subscriptions.v0.swapped:create",
    "sim-swap-subscriptions:read",
    "sim-swap-subscriptions:delete",
    "call-forwarding-signal:unconditional-call-forwardings:read",
    "call-forwarding-signal:call-forwardings:read",
    "kyc-tenure:check-tenure",
    "number-recycling:check",
]
TYPE_SCOPES: dict[str, frozenset[str]] = {
    "bank": frozenset(
        {"risk:numbers", "alerts:read", "watchlist", "webhooks", "reports:write", "contests:write", *_CALLS}
    ),
    "platform": frozenset({"risk:numbers", "alerts:read", "webhooks", "reports:write", "contests:write"}),
    "telco": frozenset(
        {
            "risk:numbers",
            "risk:devices",
            "alerts:read",
            "webhooks",
            "reports:write",
            "contests:write",
            *_CAMARA,
        }
    ),
    "operator": frozenset(SCOPES),
}
# Scopes a partner of the type may be given in its entry but does not get by default: the CAMARA
# checks a bank makes at payment or onboarding time (as it would through GSMA Open Gateway).
OPT_IN_SCOPES: dict[str, frozenset[str]] = {
    "bank": frozenset({
        "sim-swap", "sim-swap:check", "sim-swap:retrieve-date",
        "call-forwarding-signal:unconditional-call-forwardings:read", "call-forwarding-signal:call-forwardings:read",
        "kyc-tenure:check-tenure", "number-recycling:check",
    }),
}
DEFAULT_PURPOSE = "dpv:FraudPreventionAndDetection"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_second: float = Field(default=50.0, gt=0)
    burst: int = Field(default=100, ge=1)


class Partner(BaseModel):
    """One partner organisation (the ``id`` is also its OAuth ``client_id``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str = ""
    type: PartnerType
    client_secret_hash: str | None = None
    jwks: dict[str, Any] | None = Field(
        default=None, description="public keys for private_key_jwt client auth"
    )
    scopes: frozenset[str] | None = None
    purposes: tuple[str, ...] = (DEFAULT_PURPOSE,)
    disclosure: DisclosureTier = "score"
    alerts: AlertEntitlement = "watchlist"
    alert_min_level: Literal["low", "medium", "high", "critical"] = "medium"
    rate: RateLimit = RateLimit()
    quota_per_day: int = Field(default=1_000_000, ge=1)
    lookup_budget_per_hour: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Partner:
        ceiling = TYPE_SCOPES[self.type] | OPT_IN_SCOPES.get(self.type, frozenset())
        if self.scopes is None:
            object.__setattr__(self, "scopes", TYPE_SCOPES[self.type])
        else:
            unknown = set(self.scopes) - set(SCOPES)
            if unknown:
                raise ValueError(f"unknown scopes {sorted(unknown)}")
            beyond = set(self.scopes) - ceiling
            if beyond:
                raise ValueError(f"a {self.type} partner may not have scopes {sorted(beyond)}")
        if not self.purposes:
            raise ValueError("at least one purpose is needed")
        if self.client_secret_hash is None and self.jwks is None:
            raise ValueError("needs client_secret_hash or jwks (private_key_jwt)")
        if self.client_secret_hash is not None and not self.client_secret_hash.startswith("scrypt$"):
            raise ValueError("client_secret_hash must be a scrypt hash (fraudradar api hash-secret)")
        return self

    @property
    def granted(self) -> frozenset[str]:
        return self.scopes or frozenset()

    def tier_at_least(self, tier: DisclosureTier) -> bool:
        return TIER_RANK[self.disclosure] >= TIER_RANK[tier]


class PartnerFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    partners: list[Partner]


class PartnerRegistry:
    """Partners by id, loaded once at start."""

    def __init__(self, partners: list[Partner]) -> None:
        self._by_id: dict[str, Partner] = {}
        for partner in partners:
            if partner.id in self._by_id:
                raise ConfigError(f"partner {partner.id!r} is listed twice")
            self._by_id[partner.id] = partner

    @classmethod
    def from_file(cls, path: str | Path) -> PartnerRegistry:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read partners file {path}: {exc.strerror}") from exc
        try:
            return cls(PartnerFile.model_validate(raw).partners)
        except ValidationError as exc:
            raise ConfigError(f"partners file {path} is invalid: {exc}") from exc

    def get(self, partner_id: str) -> Partner | None:
        return self._by_id.get(partner_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


def hash_secret(secret: str) -> str:
    """Salted scrypt hash in the form ``scrypt$N$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against a ``hash_secret`` result."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        actual = hashlib.scrypt(
            secret.encode(),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=128 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
