"""Settings shared by every service, from ``FRAUDRADAR_*`` environment variables.

pydantic-settings reads them; each service extends ``CommonSettings`` with its own fields.
Secrets (keys, SASL password) are loaded on demand and never rendered in ``repr``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.pseudonym import Discloser, Pseudonymizer, load_key


class CommonSettings(BaseSettings):
    """Kafka connection, topic prefix, keys and the HTTP port for metrics and probes."""

    model_config = SettingsConfigDict(env_prefix="FRAUDRADAR_", extra="ignore")

    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    topic_prefix: str = Field("", description="prefix of every topic name (tests and demos use one)")
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    http_host: str = Field("0.0.0.0", description="bind address of /metrics, /healthz, /readyz")
    http_port: int = Field(9400, description="port of /metrics, /healthz, /readyz (0 = any free port)")
    default_region: str = Field("NL", description="region of national numbers when the operator has none")
    log_level: str = "INFO"

    def topic(self, base: str) -> str:
        return f"{self.topic_prefix}{base}"

    def kafka_config(self) -> dict[str, Any]:
        """Connection settings for kafka-python clients (TLS/SASL included)."""
        cfg: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            cfg["sasl_mechanism"] = self.kafka_sasl_mechanism
            cfg["sasl_plain_username"] = self.kafka_sasl_username
            cfg["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        for name in ("cafile", "certfile", "keyfile"):
            value = getattr(self, f"kafka_ssl_{name}")
            if value:
                cfg[f"ssl_{name}"] = value
        return cfg

    def pseudonymizer(self) -> Pseudonymizer:
        return Pseudonymizer(load_key("FRAUDRADAR_PSEUDONYM_KEY", "FRAUDRADAR_PSEUDONYM_KEY_FILE", "pseudonym key"))

    def discloser(self) -> Discloser:
        return Discloser(load_key("FRAUDRADAR_DISCLOSURE_KEY", "FRAUDRADAR_DISCLOSURE_KEY_FILE", "disclosure key"))
