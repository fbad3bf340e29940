"""Settings of the partner API (``FRAUDRADAR_*`` environment variables, pydantic-settings).

Everything shared (Kafka, topic prefix, keys) comes from ``CommonSettings``; the fields here are
the API's own: where partners and the token signing key live, the external IdP, limits and the
webhook delivery policy.
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from services.common.config import CommonSettings


class ApiSettings(CommonSettings):
    """Configuration of ``fraudradar api``; every field maps to ``FRAUDRADAR_<NAME>``."""

    api_host: str = Field(default="0.0.0.0", description="bind address of the partner API")
    api_port: int = Field(
        default=8080, description="port of the partner API (/metrics and the probes: FRAUDRADAR_HTTP_PORT)"
    )
    partners_file: str | None = Field(
        default=None, description="YAML file of partners (see services/api/partners.example.yaml)"
    )
    signing_key_file: str | None = Field(
        default=None,
        description="PEM EC P-256 private key that signs access tokens (fraudradar api gen-signing-key)",
    )
    previous_signing_key_file: str | None = Field(
        default=None,
        description="PEM key of the previous rotation; its public half stays in the JWKS",
    )
    jwks_url: str | None = Field(
        default=None, description="external IdP JWKS URL; tokens it signs are accepted as well"
    )
    external_issuer: str | None = Field(
        default=None, description="required 'iss' of tokens signed by the external IdP"
    )
    token_issuer: str = Field(default="fraudradar", description="'iss' of tokens this API issues")
    token_audience: str = Field(default="fraudradar-api", description="'aud' of access tokens")
    token_ttl_s: int = Field(default=900, ge=60, le=24 * 3600, description="lifetime of issued access tokens")
    public_url: str = Field(
        default="http://127.0.0.1:8080", description="external base URL (audience of client assertions)"
    )
    alerts_retention_s: int = Field(default=7 * 24 * 3600, description="how far back the alert feed reaches")
    max_body_bytes: int = Field(default=256 * 1024, description="request bodies above this answer 413")
    page_size_max: int = Field(default=500, description="largest page of the alert feed and listings")
    watchlist_max: int = Field(default=100_000, description="watch-list entries per partner")
    webhooks_max: int = Field(default=10, ge=1, description="webhooks per partner")
    streams_max: int = Field(default=4, ge=1, description="concurrent alert streams (SSE) per partner on one replica")
    reports_per_day: int = Field(default=1000, ge=1, description="reports (POST /v1/reports) per partner per day")
    contests_per_day: int = Field(default=50, ge=1, description="contests per partner per day")
    auth_failures_burst: int = Field(
        default=10,
        ge=1,
        description="failed client authentications a source address, and a client id, may make "
        "before the token endpoint answers 429 (refilled at auth_failures_per_minute)",
    )
    auth_failures_per_minute: float = Field(
        default=6.0, gt=0, description="refill of the failed-authentication buckets"
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="request line and headers above this answer 431"
    )
    max_headers: int = Field(default=64, ge=8, description="more request headers than this answer 431")
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="a request's line and headers must arrive within this; else closed"
    )
    body_timeout_s: float = Field(
        default=15.0, gt=0, description="longest wait for the next piece of a request body; else closed"
    )
    keepalive_timeout_s: float = Field(default=5.0, gt=0, description="idle keep-alive connections closed after")
    trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses/CIDRs of proxies whose X-Forwarded-For/-Proto are "
        "believed (the client address the auth-failure buckets use); empty: none",
    )
    sim_swap_subscriptions_max: int = Field(
        default=1000, ge=1, description="active CAMARA SIM Swap subscriptions per partner"
    )
    sim_swap_subscription_max_days: int = Field(
        default=90,
        ge=1,
        description="longest lifetime of a CAMARA SIM Swap subscription (also its lifetime when "
        "the request sets no subscriptionExpireTime)",
    )
    swap_monitored_days: int = Field(
        default=30, description="SIM/device change history kept (CAMARA monitoredPeriod)"
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="allow webhook URLs on private/loopback addresses (local demo and tests ONLY)",
    )
    webhook_allow_http: bool = Field(
        default=False, description="allow plain http webhook URLs (local demo and tests ONLY)"
    )
    webhook_timeout_s: float = Field(default=5.0, description="timeout of one delivery attempt")
    webhook_max_attempts: int = Field(default=8, description="attempts before a delivery is given up")
    webhook_backoff_s: float = Field(
        default=1.0, description="first retry delay; doubles per attempt (capped at 5 min)"
    )
    webhook_delivery: bool = Field(
        default=True,
        description="this replica delivers webhooks (its share of the partners); false on the "
        "autoscaled lookup replicas, true on the fixed-size delivery StatefulSet",
    )
    replica_index: int | None = Field(
        default=None,
        ge=0,
        description="index of this delivering replica; unset: the ordinal ending FRAUDRADAR_POD_NAME "
        "(a StatefulSet pod name), else 0",
    )
    replica_count: int = Field(
        default=1,
        ge=1,
        description="number of delivering replicas (fixed); each delivers webhooks for "
        "hash(partner) mod count == its index",
    )
    pod_name: str = Field(default="", description="this pod's name (downward API metadata.name)")
    limits_divisor: int = Field(
        default=1,
        ge=1,
        description="each replica enforces partner rate, quota and lookup budget divided by this "
        "(rounded up); set it to the replica count the configured figures are totals for",
    )
    audit_stall_s: float = Field(
        default=30.0,
        gt=0,
        description="not ready (and lookups refused, 503) while audit records have waited this long "
        "without any acknowledgement from Kafka",
    )
    audit_delivery_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="librdkafka delivery timeout of one produce; a failed audit record is sent again",
    )
    audit_scan_max_s: float = Field(default=10.0, description="time budget of one audit query scan")
    call_window_max_min: int = Field(default=60, ge=1, le=240,
                                     description="longest window of a call-state check; ended calls are kept this long")
    call_lookback_s: int = Field(default=24 * 3600, ge=60, description="call state rebuilt from this much of "
                                 "fraudradar.calls at start; also how long a counterpart counts as a known contact")
    call_max_s: int = Field(default=4 * 3600, ge=60, description="a call whose end never arrived is dropped after this")
    call_max_subscribers: int = Field(default=2_000_000, ge=1, description="subscribers kept in the live call state")
    first_seen_max: int = Field(default=500_000, ge=1, description="numbers first seen within the last day "
                                "kept for the call-state check's counterpart class (oldest dropped first)")
    protected_numbers_file: str | None = Field(default=None, description="CSV number,owner: the banks' caller "
                                               "numbers (which numbers a bank may pre-announce calls from)")
    announce_ttl_max_s: int = Field(default=3600, ge=1, le=86400, description="longest pre-announcement accepted")

    @model_validator(mode="after")
    def _delivery_index_in_range(self) -> ApiSettings:
        if self.webhook_delivery and self.delivery_index() >= self.replica_count:
            raise ValueError(
                f"webhook delivery index {self.delivery_index()} is not below "
                f"FRAUDRADAR_REPLICA_COUNT={self.replica_count}"
            )
        return self

    def delivery_index(self) -> int:
        """This replica's share of the webhook partners (see ``services/api/webhooks.py``)."""
        if self.replica_index is not None:
            return self.replica_index
        ordinal = _ORDINAL.search(self.pod_name)
        return int(ordinal.group(1)) if ordinal else 0


_ORDINAL = re.compile(r"-(\d+)$")
