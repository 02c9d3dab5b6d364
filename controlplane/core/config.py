"""Settings of the control plane service, read from ``CONTROLPLANE_*`` environment variables.

Built once by the composition root (the API app factory, the CLI) and passed down; nothing here
reads the environment or touches the disk at import time. Every field is listed with its default
in ``controlplane/README.md``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import slo
from controlplane.core.errors import ControlPlaneError

__all__ = ["ControlPlaneSettings", "SettingsError", "default_data_dir", "default_slo_specs"]

PositiveSeconds = Annotated[float, Field(gt=0)]
#: Paths in one variable, separated like ``PATH`` (``:`` on POSIX).
PathList = Annotated[tuple[Path, ...], NoDecode]
#: Names in one variable, separated by commas.
NameList = Annotated[tuple[str, ...], NoDecode]

#: SQLAlchemy driver used for ``postgresql://`` URLs (psycopg 3, a project dependency).
POSTGRES_DRIVER = "postgresql+psycopg"


class SettingsError(ControlPlaneError, ValueError):
    """A setting that is present but unusable (e.g. an unreadable webhook token file)."""


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/inventory-slo-controlplane`` (``~/.local/share/...`` without it)."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "inventory-slo-controlplane"


def default_slo_specs() -> tuple[Path, ...]:
    """The SLO specs shipped with the ``slo`` package (``slo/specs``)."""
    return (Path(slo.__file__).resolve().parent / "specs",)


def _default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"expected an http(s) URL with a host, got {value!r}")
    return value.rstrip("/")


class ControlPlaneSettings(BaseSettings):
    """Everything the control plane service needs to know, with fail-fast validation."""

    model_config = SettingsConfigDict(
        env_prefix="CONTROLPLANE_", extra="ignore", frozen=True, validate_default=True
    )

    # -- store ---------------------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder of the embedded SQLite database (created when the store opens).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; sqlite:///<data_dir>/controlplane.db when unset. "
        "postgresql://user@host:port/db uses psycopg 3.",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_pool_timeout_seconds: PositiveSeconds = 30.0
    sqlite_busy_timeout_seconds: PositiveSeconds = 30.0
    migrate_on_start: bool = Field(
        default=True, description="Run the Alembic migrations to head when the API starts."
    )

    # -- API -----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    required_extensions: NameList = Field(
        default=("alertmanager-webhook",),
        description="API extensions `controlplane serve` must mount (comma-separated names); "
        "one that no installed package offers stops the start. Empty: none required.",
    )

    # -- signal sources ------------------------------------------------------------------------
    prometheus_url: str = "http://127.0.0.1:9090"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    jaeger_url: str = Field(
        default="http://127.0.0.1:16686", description="Jaeger query service (HTTP API)."
    )
    source_timeout_seconds: PositiveSeconds = 5.0
    source_retry_attempts: int = Field(default=3, ge=1, le=10)
    source_retry_max_wait_seconds: PositiveSeconds = 2.0
    elasticsearch_log_index: str = Field(default="logs-*", min_length=1)
    elasticsearch_timestamp_field: str = Field(default="@timestamp", min_length=1)
    elasticsearch_trace_id_field: str = Field(default="trace.id", min_length=1)

    # -- Alertmanager webhook ------------------------------------------------------------------
    webhook_token: SecretStr | None = Field(
        default=None, description="Bearer token Alertmanager sends (http_config.authorization)."
    )
    webhook_token_file: Path | None = Field(
        default=None, description="File holding the webhook token (instead of webhook_token)."
    )
    max_webhook_body_bytes: int = Field(default=1_048_576, ge=1024)

    # -- evaluation ----------------------------------------------------------------------------
    evaluation_interval_seconds: PositiveSeconds = 30.0
    evaluation_enabled: bool = Field(
        default=True,
        description="Run the evaluation scheduler (SLOs and target checks) in `controlplane "
        "serve`; it works only while this replica is the leader.",
    )
    slo_specs: PathList = Field(
        default_factory=default_slo_specs,
        description="SLO spec files or folders (os.pathsep-separated); default: slo/specs.",
    )
    evaluation_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Evaluations older than this are deleted (hourly); 0 keeps them all.",
    )

    # -- target checks (orchestrator, policies and database nodes: see ActionSettings) --------
    target_checks_interval_seconds: PositiveSeconds = 60.0
    local_replicas: int | None = Field(
        default=None,
        ge=1,
        description="Worker count the local app should run (desired); default: what runs.",
    )
    local_min_replicas: int | None = Field(
        default=None, ge=1, description="Local scaling bounds: fewest gunicorn workers."
    )
    local_max_replicas: int | None = Field(
        default=None, ge=1, description="Local scaling bounds: most gunicorn workers."
    )
    local_target_cpu_percent: int | None = Field(
        default=None, gt=0, le=100, description="Local scaling: CPU per worker to aim at."
    )

    # -- leader election -----------------------------------------------------------------------
    leader_election: bool = Field(
        default=True,
        description="Take part in leader election (PostgreSQL: advisory lock; SQLite: a file "
        "lock beside the database). Off: never leader, API only.",
    )
    leader_name: str = Field(default="controlplane", min_length=1, max_length=64)
    leader_lock_key: int = Field(default=0x51_0C_0B_7E, ge=-(2**63), le=2**63 - 1)
    leader_check_interval_seconds: PositiveSeconds = 2.0
    leader_acquire_interval_seconds: PositiveSeconds = 2.0
    leader_query_timeout_seconds: PositiveSeconds = 2.0
    replica_id: str = Field(default_factory=_default_replica_id, min_length=1, max_length=200)

    # -- validation ----------------------------------------------------------------------------
    @field_validator("prometheus_url", "elasticsearch_url", "jaeger_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("slo_specs", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = tuple(Path(part) for part in value.split(os.pathsep) if part.strip())
            if not parts:
                raise ValueError("give at least one SLO spec file or folder")
            return parts
        return value

    @field_validator("required_extensions", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0] if "://" in value else ""
        dialect = scheme.split("+", 1)[0]
        if dialect not in {"sqlite", "postgresql"}:
            raise ValueError(
                "database_url must be a sqlite:///path or postgresql://... URL, "
                f"got scheme {scheme!r}"
            )
        if dialect == "postgresql" and scheme not in {"postgresql", POSTGRES_DRIVER}:
            raise ValueError(f"PostgreSQL is reached through psycopg 3 ({POSTGRES_DRIVER}://)")
        return value

    @model_validator(mode="after")
    def _one_webhook_token_source(self) -> ControlPlaneSettings:
        if self.webhook_token is not None and self.webhook_token_file is not None:
            raise ValueError("set webhook_token or webhook_token_file, not both")
        if self.webhook_token is not None and not self.webhook_token.get_secret_value().strip():
            raise ValueError("webhook_token is empty")
        return self

    @model_validator(mode="after")
    def _local_bounds(self) -> ControlPlaneSettings:
        low, high = self.local_min_replicas, self.local_max_replicas
        if (low is None) != (high is None):
            raise ValueError("set local_min_replicas and local_max_replicas together")
        if low is not None and high is not None and low > high:
            raise ValueError(f"local_min_replicas ({low}) is above local_max_replicas ({high})")
        return self

    # -- derived values ------------------------------------------------------------------------
    @property
    def sqlalchemy_url(self) -> str:
        """The database URL as SQLAlchemy takes it (psycopg 3 driver for PostgreSQL)."""
        if self.database_url is None:
            return f"sqlite:///{self.data_dir / 'controlplane.db'}"
        if self.database_url.startswith("postgresql://"):
            return POSTGRES_DRIVER + self.database_url[len("postgresql") :]
        return self.database_url

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    def resolved_webhook_token(self) -> str | None:
        """The webhook token from ``webhook_token`` or the file, or None when neither is set."""
        if self.webhook_token is not None:
            return self.webhook_token.get_secret_value().strip()
        if self.webhook_token_file is None:
            return None
        try:
            token = self.webhook_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(
                f"cannot read the webhook token file {self.webhook_token_file}: {exc}"
            ) from exc
        if not token:
            raise SettingsError(f"the webhook token file {self.webhook_token_file} is empty")
        return token
