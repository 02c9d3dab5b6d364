"""Settings of the inventory API and its stream workers (environment variables ``INVENTORY_*``).

Built once by the entry point (``python -m app.serve``, ``python -m app.worker``) or by a test and
passed down explicitly: nothing here reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
#: Only asymmetric signatures: a shared-secret (HS*) or unsigned (``none``) token is never accepted.
AuthAlgorithm = Literal["RS256", "ES256"]


def _check_postgres_dsn(value: str) -> str:
    """A libpq URI (``postgresql://user@h1:5432,h2:5433/db?...``); several hosts are allowed."""
    parts = urlsplit(value)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ValueError("must be a libpq URI starting with postgresql://")
    if not parts.netloc and "host=" not in parts.query:
        raise ValueError("names no host")
    if not parts.path.strip("/"):
        raise ValueError("names no database (…/dbname)")
    return value


class Settings(BaseSettings):
    """Everything the API and the workers need to know about their surroundings."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_", frozen=True, extra="ignore")

    # -- PostgreSQL ---------------------------------------------------------------------------
    #: Write DSN. Several hosts (``h1:5432,h2:5433``) are tried in order; the connection is always
    #: opened with ``target_session_attrs=read-write`` so a promoted replica is found again.
    database_url: str
    #: Read DSN for read-only queries (a replica). None: every read goes to the primary.
    replica_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: int = Field(default=3, ge=1, le=60)
    #: Server-side limit for any one statement of the API (milliseconds).
    db_statement_timeout_ms: int = Field(default=5000, ge=100)
    #: Reads go to the replica only while its replay lag is at most this many seconds.
    replica_max_lag_seconds: float = Field(default=1.0, gt=0)
    #: How often each API process measures the replica lag.
    replica_check_interval_seconds: float = Field(default=1.0, gt=0)

    # -- Redis (cache and movement stream) ---------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    #: After a Redis failure, skip Redis for this long before trying again (circuit breaker).
    redis_down_backoff_seconds: float = Field(default=1.0, ge=0)
    #: Retry-After sent with a 503 when a write cannot be accepted durably.
    retry_after_seconds: int = Field(default=5, ge=1)
    #: Lifetime of a cached stock entry: the staleness bound if an invalidation is ever lost.
    cache_ttl_seconds: int = Field(default=60, ge=1)
    #: Keep a per-process copy of hot stock entries, invalidated by Redis (client tracking).
    near_cache: bool = True
    near_cache_max_entries: int = Field(default=100_000, ge=1)
    stream_key: str = "inventory:movements"
    consumer_group: str = "appliers"
    #: Movements waiting in the stream above which new ones are refused with 503 (backpressure).
    stream_max_backlog: int = Field(default=2_000_000, ge=1)
    idempotency_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)

    # -- domain -------------------------------------------------------------------------------
    reservation_ttl_seconds: int = Field(default=900, ge=1)
    max_page_size: int = Field(default=500, ge=1)
    default_page_size: int = Field(default=50, ge=1)

    # -- telemetry ----------------------------------------------------------------------------
    service_name: str = "inventory"
    worker_service_name: str = "inventory-worker"
    #: OTLP/HTTP endpoint of the trace collector (Jaeger), e.g. http://127.0.0.1:4318.
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    #: Elasticsearch URL the ECS log lines are shipped to in bulk. None: stdout only.
    elasticsearch_url: str | None = None
    log_level: LogLevel = "INFO"
    #: One ECS log line per request (with trace.id / span.id).
    access_log: bool = True
    #: Also write the ECS lines to stderr.
    log_to_stderr: bool = True
    #: Log lines waiting for the shipper; past this, new lines are dropped and counted.
    log_buffer_lines: int = Field(default=20_000, ge=10)
    log_flush_interval_seconds: float = Field(default=1.0, gt=0)
    log_bulk_max_lines: int = Field(default=2_000, ge=1)

    # -- fault injection (drills, the closed-loop demo): see app/faults.py ---------------------
    #: JSON file of injected faults, re-read when it changes. None: no injection at all.
    faults_file: Path | None = None

    # -- authentication (OAuth2 bearer tokens of the identity provider): see app/core/auth.py --
    #: Issuer of the access tokens (``http://127.0.0.1:8080/realms/inventory``). Set: every route
    #: but the probes and /metrics needs a token. None: authentication is OFF (logged loudly).
    auth_issuer: str | None = None
    #: The ``aud`` value tokens must carry.
    auth_audience: str = Field(default="inventory-api", min_length=1)
    #: The provider's JSON Web Key Set. None: ``jwks_uri`` of the issuer's discovery document.
    auth_jwks_url: str | None = None
    #: Clock skew allowed on ``exp`` / ``nbf`` / ``iat``.
    auth_leeway_seconds: float = Field(default=5.0, ge=0, le=300)
    #: Signature algorithms accepted (asymmetric only: RS256, ES256).
    auth_algorithms: Annotated[tuple[AuthAlgorithm, ...], NoDecode] = ("RS256",)
    #: Least time between two key-set downloads caused by unknown key ids (bounds the load a
    #: client sending garbage ``kid`` values can put on the provider).
    auth_jwks_min_refresh_seconds: float = Field(default=5.0, ge=0.1, le=3600)
    #: The key set is downloaded again in the background when it is older than this (drops keys
    #: the provider no longer publishes).
    auth_jwks_max_age_seconds: float = Field(default=300.0, ge=1)
    #: Verified tokens remembered (by their full text) until they expire: the hot path then costs
    #: a dictionary lookup instead of a signature check.
    auth_token_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    #: The OpenAPI document and the docs page readable without a token (off: only the probes and
    #: the metrics are; the document then needs ``inventory:read`` like any read).
    auth_public_docs: bool = False
    #: Timeout of the requests to the provider (discovery, key set).
    auth_http_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    # -- benchmark endpoints (naive read, constant JSON, one INSERT per request) -------------
    bench_endpoints: bool = False

    # -- workers ------------------------------------------------------------------------------
    worker_batch_size: int = Field(default=1000, ge=1, le=20_000)
    worker_block_ms: int = Field(default=200, ge=1)
    #: A pending entry idle for this long belongs to a dead consumer and is claimed.
    worker_claim_idle_ms: int = Field(default=30_000, ge=100)
    worker_claim_interval_seconds: float = Field(default=5.0, gt=0)
    #: Deliveries after which a movement that still did not apply goes to the dead letters.
    worker_max_deliveries: int = Field(default=5, ge=1)
    worker_sweep_interval_seconds: float = Field(default=5.0, gt=0)
    #: Port of the worker's own /metrics (0: none).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    #: Fault injection for tests and drills: the worker SIGKILLs itself in its N-th batch, either
    #: inside the open transaction (``before_commit``) or after COMMIT and before XACK
    #: (``after_commit``). None: never.
    worker_crash_after_commits: int | None = Field(default=None, ge=1)
    worker_crash_point: Literal["before_commit", "after_commit"] = "after_commit"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return _check_postgres_dsn(value)

    @field_validator("replica_url")
    @classmethod
    def _replica_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _check_postgres_dsn(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("auth_issuer", "auth_jwks_url")
    @classmethod
    def _auth_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an absolute http(s):// URL")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return value.rstrip("/")

    @field_validator("auth_algorithms", mode="before")
    @classmethod
    def _auth_algorithms(cls, value: object) -> object:
        """``RS256,ES256`` (an environment variable) or a list; empty is refused."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple) and not value:
            raise ValueError("name at least one algorithm (RS256, ES256)")
        return value

    @field_validator("otlp_endpoint", "elasticsearch_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("must be an http(s):// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _pages(self) -> Settings:
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size must not exceed max_page_size")
        return self
