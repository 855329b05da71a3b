"""The one settings class: every knob is a `SALESLOOP_*` environment variable."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import ip_network
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.secrets import Keyring, check_secret_key, keyring

# Used by `salesloop dev` and the tests only; refused anywhere else.
DEV_SECRET_KEY = "dev-only-secret-key-do-not-use-in-production"

EVENTS_TOPIC = "salesloop.events.v1"
DLQ_TOPIC = "salesloop.events.dlq.v1"


class Settings(BaseSettings):
    # Errors never echo what they refuse: a weak SALESLOOP_SECRET_KEY is still a secret.
    model_config = SettingsConfigDict(env_prefix="SALESLOOP_", extra="ignore", hide_input_in_errors=True)

    env: Literal["dev", "test", "production"] = "production"
    database_url: SecretStr = SecretStr("postgresql://salesloop@127.0.0.1:5432/salesloop")
    kafka_bootstrap: str = "127.0.0.1:9092"
    events_topic: str = EVENTS_TOPIC
    dlq_topic: str = DLQ_TOPIC
    topic_partitions: int = Field(12, ge=1)
    topic_replication: int = Field(1, ge=1)
    consumer_group: str = "salesloop-aggregator"
    # How long the group waits for a silent (crashed) member before moving its partitions.
    consumer_session_timeout_ms: int = Field(10_000, ge=1_000)
    # Encrypts tenant secrets at rest (a key derived with scrypt); refused in production when weak. See
    # docs/operations.md, "Secrets".
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    # The key a rotation moves away from: still read, never written (`salesloop secrets rotate`).
    secret_key_previous: SecretStr | None = None
    public_base_url: str | None = None
    # Addresses or CIDR networks of the proxies in front of ingest and the API, comma-separated: only
    # from these are X-Forwarded-For and X-Forwarded-Proto believed. Unset: from nobody.
    trusted_proxies: str | None = None

    # Every HTTP service (services/core/serving.py); the body bounds below, too, hold for ingest and api.
    # A request line and headers over this many bytes are answered 431.
    max_header_bytes: int = Field(16 * 1024, ge=4096)
    # A request head not whole this long after the connection opened (or after its first byte) is cut
    # off: the connection is closed, with a 408 if part of a head came.
    header_timeout_s: float = Field(10.0, gt=0)
    # Connections (or requests in progress) a process holds before it answers 503.
    max_connections: int = Field(1000, ge=1)

    # ingest
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_batch_events: int = Field(1000, ge=1)
    produce_timeout_s: float = Field(5.0, gt=0)
    # A body slower than this is refused with 408 (slow senders must not hold workers).
    body_read_timeout_s: float = Field(10.0, gt=0)
    auth_cache_ttl_s: float = Field(5.0, ge=0)
    # Per-tenant token bucket over events (a batch of n takes n tokens), per ingest process: with N
    # replicas a tenant may send N times this. 0 turns the limit off.
    rate_limit_events_per_s: float = Field(2000.0, ge=0)
    rate_limit_burst: int = Field(4000, ge=1)

    # aggregator
    batch_max_events: int = Field(10_000, ge=1)
    batch_wait_ms: int = Field(200, ge=0)
    # Transcript text (and the text of its moments) of calls older than this many days is erased by
    # the aggregator, which keeps the call's analysis (SPEC 5.7; docs/operations.md, "Retention").
    transcript_retention_days: int = Field(365, ge=1)
    # Whole months of the event archive that ended more than this many days ago are dropped; rollups
    # and folded state stay (docs/operations.md, "Archive partitions and retention"). 0 keeps them all.
    archive_retention_days: int = Field(730, ge=0)

    # api: the tenants whose stale deals and slipped amount are Prometheus gauges, comma-separated, at
    # most 20 (docs/pipeline.md, "Alerting"). Unset: no tenant is a label of any metric.
    pipeline_metrics_tenants: str | None = None

    # databases
    db_pool_size: int = Field(10, ge=1)
    # api: the database its GET answers are read from, a streaming replica of database_url (unset: the
    # primary). Writes, key checks and coaching snapshots stay on the primary (docs/operations.md,
    # "Read replicas").
    read_database_url: SecretStr | None = None
    # Read by `salesloop migrate` only: the login of Grafana's read-only role (unset: role cannot log in).
    grafana_db_password: SecretStr | None = None
    log_level: str = "INFO"

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str | None) -> str | None:
        try:
            nets = [
                str(ip_network(item.strip(), strict=False))
                for item in (value or "").split(",")
                if item.strip()
            ]
        except ValueError as exc:
            raise ValueError(f"SALESLOOP_TRUSTED_PROXIES: {exc}") from None
        return ",".join(nets) or None

    @field_validator("pipeline_metrics_tenants")
    @classmethod
    def _few_tenants(cls, value: str | None) -> str | None:
        tenants = [t.strip() for t in (value or "").split(",") if t.strip()]
        if len(tenants) > 20 or any(len(t) > 63 for t in tenants):
            raise ValueError("SALESLOOP_PIPELINE_METRICS_TENANTS: at most 20 tenant slugs, comma-separated")
        return ",".join(tenants) or None

    @model_validator(mode="after")
    def _refuse_weak_secret(self) -> Settings:
        key = self.secret_key.get_secret_value()
        if self.env != "production":
            return self
        if key == DEV_SECRET_KEY:
            raise ValueError(
                "SALESLOOP_SECRET_KEY is the development default; set a real secret in production"
            )
        check_secret_key(key)
        return self

    def keyring(self) -> Keyring:
        """The tenant secrets' keys: SALESLOOP_SECRET_KEY, and SALESLOOP_SECRET_KEY_PREVIOUS if set."""
        previous = self.secret_key_previous.get_secret_value() if self.secret_key_previous else ""
        return keyring(self.secret_key.get_secret_value(), [previous])

    def trusted_proxy_list(self) -> list[str]:
        return self.trusted_proxies.split(",") if self.trusted_proxies else []

    def pipeline_metrics_tenant_list(self) -> list[str]:
        return self.pipeline_metrics_tenants.split(",") if self.pipeline_metrics_tenants else []


@lru_cache
def get_settings() -> Settings:
    return Settings()
