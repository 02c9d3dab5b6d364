"""Settings of the control plane: one root made of groups, read from ``CONTROLPLANE_*`` variables.

:class:`ControlPlaneSettings` is built once by a composition root (``controlplane serve``, the
API app factory, a CLI command), held by the :class:`~controlplane.runtime.Runtime` and passed
down; code reads the group it needs (``settings.sources.prometheus_url``,
``settings.orchestrator.kind``). Each field keeps one flat environment variable,
``CONTROLPLANE_<FIELD>`` whatever its group (the orchestrator's ``kind`` is
``CONTROLPLANE_ORCHESTRATOR``): :func:`environment_names` lists them. In Python the groups are
given nested: ``ControlPlaneSettings(store=StoreSettings(data_dir=...))``.

Nothing here reads the environment or touches the disk at import time. Every variable is listed
with its default in ``controlplane/README.md``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

import slo
from controlplane.core.errors import ControlPlaneError
from controlplane.core.security import (
    DEFAULT_MFA_METHODS,
    DEFAULT_ROLE_GROUPS,
    Role,
    RoleGroups,
    mfa_methods_setting,
    mfa_role_setting,
    parse_mfa_methods,
    parse_role_groups,
)
from controlplane.core.validation import (
    HttpUrl,
    HttpUrlList,
    NameList,
    PathList,
    PositiveSeconds,
    SecretUnreadable,
    parse_pairs,
    read_secret,
)

__all__ = [
    "DEFAULT_ACTION_POLICY",
    "DEFAULT_CAPACITY_POLICY",
    "DEFAULT_DR_POLICY",
    "ENV_PREFIX",
    "POLICY_DIR",
    "ActionsSettings",
    "ApiSettings",
    "BackupSettings",
    "ControlPlaneSettings",
    "EvaluationSettings",
    "FailoverDriverKind",
    "FailoverMode",
    "FailoverSettings",
    "IdentitySettings",
    "LeaderSettings",
    "NodeAddress",
    "OrchestratorKind",
    "OrchestratorSettings",
    "PolicySettings",
    "SettingsError",
    "SourceSettings",
    "StoreSettings",
    "WebhookSettings",
    "default_data_dir",
    "default_slo_specs",
    "environment_names",
    "setting_name",
    "unknown_environment",
]

ENV_PREFIX = "CONTROLPLANE_"

#: SQLAlchemy driver used for ``postgresql://`` URLs (psycopg 3, a project dependency).
POSTGRES_DRIVER = "postgresql+psycopg"

#: The policy files shipped with the control plane (``controlplane/policies``).
POLICY_DIR = Path(__file__).resolve().parents[1] / "policies"
DEFAULT_ACTION_POLICY = POLICY_DIR / "actions.yaml"
DEFAULT_CAPACITY_POLICY = POLICY_DIR / "capacity.yaml"
DEFAULT_DR_POLICY = POLICY_DIR / "dr.yaml"

OrchestratorKind = Literal["none", "local", "kubernetes"]
#: Who moves the primary role: the control plane itself (promote and fence PostgreSQL servers
#: whose data folders it holds) or Patroni, through its REST API.
FailoverDriverKind = Literal["local", "patroni"]
#: ``auto``: Patroni fails over by itself, the control plane records what it did;
#: ``controlled``: Patroni is paused, the control plane decides through the gate.
FailoverMode = Literal["auto", "controlled"]


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


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


# -- the groups --------------------------------------------------------------------------------
class StoreSettings(_Group):
    """The control plane's own database."""

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


class ApiSettings(_Group):
    """Where ``controlplane serve`` listens."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    required_extensions: NameList = Field(
        default=("alertmanager-webhook",),
        description="API extensions `controlplane serve` must mount (comma-separated names); "
        "one that no installed package offers stops the start. Empty: none required.",
    )


class WebhookSettings(_Group):
    """The Alertmanager receiver."""

    webhook_token: SecretStr | None = Field(
        default=None, description="Bearer token Alertmanager sends (http_config.authorization)."
    )
    webhook_token_file: Path | None = Field(
        default=None, description="File holding the webhook token (instead of webhook_token)."
    )
    max_webhook_body_bytes: int = Field(default=1_048_576, ge=1024)

    @model_validator(mode="after")
    def _one_token_source(self) -> WebhookSettings:
        if self.webhook_token is not None and self.webhook_token_file is not None:
            raise ValueError(
                "set CONTROLPLANE_WEBHOOK_TOKEN or CONTROLPLANE_WEBHOOK_TOKEN_FILE, not both"
            )
        if self.webhook_token is not None and not self.webhook_token.get_secret_value().strip():
            raise ValueError("CONTROLPLANE_WEBHOOK_TOKEN is empty")
        return self

    def resolved_token(self) -> str | None:
        """The webhook token from ``webhook_token`` or the file, or None when neither is set."""
        try:
            return read_secret(value=self.webhook_token, file=self.webhook_token_file)
        except SecretUnreadable as exc:
            raise SettingsError(f"CONTROLPLANE_WEBHOOK_TOKEN_FILE: {exc}") from exc


class SourceSettings(_Group):
    """The signal sources: Prometheus, Elasticsearch, Jaeger, and how they are asked."""

    prometheus_url: HttpUrl = "http://127.0.0.1:9090"
    elasticsearch_url: HttpUrl = "http://127.0.0.1:9200"
    jaeger_url: HttpUrl = Field(
        default="http://127.0.0.1:16686", description="Jaeger query service (HTTP API)."
    )
    source_timeout_seconds: PositiveSeconds = 5.0
    source_retry_attempts: int = Field(default=3, ge=1, le=10)
    source_retry_max_wait_seconds: PositiveSeconds = 2.0
    elasticsearch_log_index: str = Field(default="logs-*", min_length=1)
    elasticsearch_timestamp_field: str = Field(default="@timestamp", min_length=1)
    elasticsearch_trace_id_field: str = Field(default="trace.id", min_length=1)


class EvaluationSettings(_Group):
    """The evaluation scheduler: SLO evaluation, target checks and retention."""

    evaluation_enabled: bool = Field(
        default=True,
        description="Run the evaluation scheduler (SLOs and target checks) in `controlplane "
        "serve`; it works only while this replica is the leader.",
    )
    evaluation_interval_seconds: PositiveSeconds = 30.0
    slo_specs: PathList = Field(
        default_factory=default_slo_specs,
        description="SLO spec files or folders (os.pathsep-separated); default: slo/specs.",
    )
    evaluation_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Evaluations older than this are deleted (hourly); 0 keeps them all.",
    )
    target_checks_interval_seconds: PositiveSeconds = 60.0


class PolicySettings(_Group):
    """The versioned policy files (defaults: ``controlplane/policies``)."""

    action_policy: Path = Field(
        default=DEFAULT_ACTION_POLICY, description="Versioned action policy (triggers → actions)."
    )
    capacity_policy: Path = DEFAULT_CAPACITY_POLICY
    dr_policy: Path = DEFAULT_DR_POLICY


class OrchestratorSettings(_Group):
    """Where replicas are read and changed, and the local app's scaling bounds."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    kind: OrchestratorKind = Field(
        default="none",
        validation_alias="orchestrator",
        description="Where replicas are read and changed: none, local or kubernetes.",
    )
    local_pidfile: Path | None = Field(
        default=None, description="gunicorn master pidfile of the local app (orchestrator=local)."
    )
    local_service: str = Field(default="inventory", min_length=1)
    kubernetes_namespace: str = Field(default="inventory", min_length=1)
    kubernetes_kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig of orchestrator=kubernetes; unset: in-cluster credentials, "
        "else the default kubeconfig.",
    )
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

    @model_validator(mode="after")
    def _local_needs_its_pidfile(self) -> OrchestratorSettings:
        if self.kind == "local" and self.local_pidfile is None:
            raise ValueError("CONTROLPLANE_ORCHESTRATOR=local needs CONTROLPLANE_LOCAL_PIDFILE")
        return self

    @model_validator(mode="after")
    def _local_bounds(self) -> OrchestratorSettings:
        low, high = self.local_min_replicas, self.local_max_replicas
        if (low is None) != (high is None):
            raise ValueError(
                "set CONTROLPLANE_LOCAL_MIN_REPLICAS and CONTROLPLANE_LOCAL_MAX_REPLICAS together"
            )
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"CONTROLPLANE_LOCAL_MIN_REPLICAS ({low}) is above "
                f"CONTROLPLANE_LOCAL_MAX_REPLICAS ({high})"
            )
        return self


class ActionsSettings(_Group):
    """The action engine: alert and burn triggers, approvals."""

    actions_enabled: bool = Field(
        default=True, description="Run the action engine (alert and burn triggers, approvals)."
    )
    action_interval_seconds: PositiveSeconds = Field(
        default=5.0, description="How often the engine reads burn triggers and approvals."
    )
    actions_crash_point: Literal["after_decision", "after_act"] | None = Field(
        default=None,
        description="Fault injection for drills: SIGKILL the process once a taken decision's "
        "execution is claimed (after_decision), or once the actuator ran and before its "
        "outcome is recorded (after_act).",
    )


@dataclass(frozen=True, kw_only=True)
class NodeAddress:
    """A PostgreSQL node of ``CONTROLPLANE_DATABASE_NODES``: ``name=host:port``."""

    name: str
    host: str
    port: int


def _host_port(address: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"{address!r} is not host:port")
    return host, int(port)


def _node_addresses(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    pairs = parse_pairs(value, value=_host_port, shape="name=host:port")
    return tuple(NodeAddress(name=n, host=host, port=port) for n, (host, port) in pairs.items())


def _data_dirs(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return parse_pairs(value, value=Path, shape="name=path")


class FailoverSettings(_Group):
    """The PostgreSQL topology: the failover driver, its nodes or Patroni, automatic failover
    and scheduled drills."""

    failover_driver: FailoverDriverKind = Field(
        default="local",
        description="Who moves the primary role: local (the control plane promotes and fences "
        "the servers of CONTROLPLANE_DATABASE_NODES) or patroni (Patroni, through the REST "
        "API at CONTROLPLANE_PATRONI_URLS).",
    )
    patroni_urls: HttpUrlList = Field(
        default=(),
        description="Patroni REST API base URLs, comma separated "
        "(e.g. http://127.0.0.1:8008,http://127.0.0.1:8009); the patroni driver needs one.",
    )
    failover_mode: FailoverMode | None = Field(
        default=None,
        description="patroni driver: auto (Patroni fails over by itself; the control plane "
        "records it) or controlled (Patroni paused; the control plane decides through the "
        "gate and calls POST /failover). Unset: auto with patroni, controlled with local (the "
        "only mode the local driver has).",
    )
    database_nodes: Annotated[tuple[NodeAddress, ...], BeforeValidator(_node_addresses)] = Field(
        default=(),
        description="PostgreSQL nodes as name=host:port, comma separated, primary first "
        "(e.g. primary=127.0.0.1:5432,replica_1=127.0.0.1:5433).",
    )
    database_name: str = Field(default="inventory", description="Database of the DR policy.")
    database_data_dirs: Annotated[dict[str, Path], BeforeValidator(_data_dirs)] = Field(
        default_factory=dict,
        description="Data folders of the local PostgreSQL nodes as name=path, comma separated: "
        "what local fencing needs. Without them automatic failover stays off.",
    )
    failover_enabled: bool = Field(
        default=True, description="Fail the database over automatically (needs nodes + dirs)."
    )
    drill_interval_hours: float = Field(
        default=0.0,
        ge=0,
        description="Run a switchover drill when the newest stored drill is older than this "
        "(needs nodes + dirs); 0: no scheduled drills.",
    )
    failover_probe_interval_seconds: PositiveSeconds = 0.5
    failover_probe_threshold: int = Field(
        default=3, ge=1, description="Consecutive failed probes that declare the primary down."
    )

    @model_validator(mode="after")
    def _driver_settings_agree(self) -> FailoverSettings:
        if self.failover_driver == "patroni" and not self.patroni_urls:
            raise ValueError(
                "CONTROLPLANE_FAILOVER_DRIVER=patroni needs CONTROLPLANE_PATRONI_URLS "
                "(Patroni REST API URLs, comma separated)"
            )
        if self.failover_driver == "local" and self.patroni_urls:
            raise ValueError(
                "CONTROLPLANE_PATRONI_URLS is set but CONTROLPLANE_FAILOVER_DRIVER is local: "
                "set CONTROLPLANE_FAILOVER_DRIVER=patroni to fail over through Patroni"
            )
        if self.failover_driver == "local" and self.failover_mode == "auto":
            raise ValueError(
                "CONTROLPLANE_FAILOVER_MODE=auto needs CONTROLPLANE_FAILOVER_DRIVER=patroni: "
                "the local driver has no engine that fails over by itself (only controlled)"
            )
        return self

    @property
    def mode(self) -> FailoverMode:
        """The failover mode in effect (the driver's default when unset)."""
        if self.failover_mode is not None:
            return self.failover_mode
        return "auto" if self.failover_driver == "patroni" else "controlled"


class BackupSettings(_Group):
    """Backups, WAL archiving and restore validation with pgBackRest (off without a config)."""

    pgbackrest_config: Path | None = Field(
        default=None,
        description="pgBackRest configuration of the database's stanza; unset: no backups, "
        "no archive or restore checks.",
    )
    pgbackrest_stanza: str = Field(default="inventory", min_length=1)
    pgbackrest_binary: Path = Path("/usr/bin/pgbackrest")
    pgbackrest_user: str | None = Field(
        default=None,
        description="OS account that runs pgBackRest and the scratch server of a restore "
        "(PostgreSQL's own; needed when the control plane runs as root).",
    )
    backup_schedule_enabled: bool = Field(
        default=True,
        description="Take the DR policy's full and differential backups and run its restore "
        "validations (leader only, through the action gate).",
    )
    backup_check_interval_seconds: PositiveSeconds = Field(
        default=60.0, description="How often the leader looks whether a backup is due."
    )
    backup_timeout_seconds: PositiveSeconds = 6 * 3600.0
    restore_scratch_dir: Path | None = Field(
        default=None,
        description="Folder the restore validation restores into (default: "
        "<data_dir>/restore-scratch); emptied after each restore.",
    )
    restore_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the scratch server; 0: a free one."
    )
    restore_timeout_seconds: PositiveSeconds = Field(
        default=3600.0, description="Longest a restore and its recovery may take."
    )
    restore_pg_bindir: Path | None = Field(
        default=None,
        description="PostgreSQL binaries of the scratch server; default: "
        "/usr/lib/postgresql/<major of the backup>/bin.",
    )

    @property
    def configured(self) -> bool:
        return self.pgbackrest_config is not None


class LeaderSettings(_Group):
    """Leader election between replicas of the control plane."""

    leader_election: bool = Field(
        default=True,
        description="Take part in leader election (a lease row in the store, renewed by the "
        "leader). Off: never leader, API only.",
    )
    leader_name: str = Field(default="controlplane", min_length=1, max_length=64)
    leader_lock_key: int = Field(default=0x51_0C_0B_7E, ge=-(2**63), le=2**63 - 1)
    leader_lease_ttl_seconds: PositiveSeconds = Field(
        default=10.0,
        description="A lease not renewed for this long lapses: a follower takes over and the "
        "old leader's fencing token is refused.",
    )
    leader_check_interval_seconds: PositiveSeconds = 2.0
    leader_acquire_interval_seconds: PositiveSeconds = 2.0
    leader_query_timeout_seconds: PositiveSeconds = 2.0
    replica_id: str = Field(default_factory=_default_replica_id, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _renewed_in_time(self) -> LeaderSettings:
        # The leader must be able to renew (one query) at least twice before the lease lapses.
        needed = 2 * (self.leader_check_interval_seconds + self.leader_query_timeout_seconds)
        if self.leader_lease_ttl_seconds < needed:
            raise ValueError(
                f"CONTROLPLANE_LEADER_LEASE_TTL_SECONDS must be at least twice the check "
                f"interval plus the query timeout ({needed:g} s), so the leader can renew "
                "its lease before it lapses"
            )
        return self


def _role_groups(value: Any) -> Any:
    return parse_role_groups(value) if isinstance(value, str) else value


class IdentitySettings(_Group):
    """The identity provider (OpenID Connect): whose access tokens the API accepts next to its
    own API tokens, which groups give which role, and the client the control plane calls the
    inventory API as."""

    oidc_issuer: HttpUrl | None = Field(
        default=None,
        description="Issuer URL of the provider (`<issuer>/.well-known/openid-configuration`); "
        "unset: only API tokens are accepted.",
    )
    oidc_audience: str = Field(
        default="controlplane-api", min_length=1, description="Audience the access tokens carry."
    )
    oidc_role_groups: Annotated[RoleGroups, BeforeValidator(_role_groups)] = Field(
        default_factory=lambda: parse_role_groups(DEFAULT_ROLE_GROUPS),
        description="role=group|group,... : the provider groups (`groups` claim) giving each "
        "role; a person in none of them has no role (403).",
    )
    oidc_mfa_role: Annotated[Role | None, BeforeValidator(mfa_role_setting)] = Field(
        default=Role.ADMIN,
        description="A provider token whose groups give this role or a higher one gets it only "
        "when its `amr` claim names a second factor (else the role below it); `none`: no role "
        "needs one.",
    )
    oidc_mfa_methods: Annotated[tuple[str, ...], BeforeValidator(mfa_methods_setting)] = Field(
        default_factory=lambda: parse_mfa_methods(DEFAULT_MFA_METHODS),
        description="`amr` values (comma-separated) that prove a second factor.",
    )
    oidc_jwks_min_refresh_seconds: PositiveSeconds = Field(
        default=10.0,
        description="A token signed with an unknown key re-reads the provider's keys at most "
        "this often.",
    )
    oidc_jwks_max_age_seconds: PositiveSeconds = 3600.0
    oidc_leeway_seconds: float = Field(default=0.0, ge=0, le=300)
    oidc_timeout_seconds: PositiveSeconds = 5.0
    inventory_client_id: str = Field(
        default="controlplane-probe",
        min_length=1,
        description="Client the control plane calls the inventory API as (client credentials).",
    )
    inventory_client_secret_file: Path | None = Field(
        default=None,
        description="File holding that client's secret; unset: calls to the inventory API "
        "carry no token.",
    )
    inventory_token_url: HttpUrl | None = Field(
        default=None,
        description="Token endpoint for those calls; unset: the issuer's (discovery).",
    )

    @field_validator("oidc_role_groups")
    @classmethod
    def _some_role(cls, value: RoleGroups) -> RoleGroups:
        if not value:
            raise ValueError("map at least one role to a group (role=group,...)")
        return value

    @model_validator(mode="after")
    def _client_needs_provider(self) -> IdentitySettings:
        if (
            self.inventory_client_secret_file is not None
            and self.inventory_token_url is None
            and self.oidc_issuer is None
        ):
            raise ValueError(
                "CONTROLPLANE_INVENTORY_CLIENT_SECRET_FILE needs CONTROLPLANE_OIDC_ISSUER or "
                "CONTROLPLANE_INVENTORY_TOKEN_URL (where to get the tokens)"
            )
        return self

    def inventory_client_secret(self) -> str | None:
        """The inventory client's secret, None when no secret file is set."""
        try:
            return read_secret(value=None, file=self.inventory_client_secret_file)
        except SecretUnreadable as exc:
            raise SettingsError(f"CONTROLPLANE_INVENTORY_CLIENT_SECRET_FILE: {exc}") from exc


# -- the root ----------------------------------------------------------------------------------
def _env_key(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    return ENV_PREFIX + (alias if isinstance(alias, str) else name).upper()


class _FlatEnvironment(PydanticBaseSettingsSource):
    """``CONTROLPLANE_<FIELD>`` variables (any case) into their groups, as strings: the group's
    validators parse them (numbers, booleans, paths, ``name=value`` lists)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every group at once

    def __call__(self) -> dict[str, Any]:
        environ = {key.upper(): value for key, value in os.environ.items()}
        values: dict[str, dict[str, str]] = {}
        for variable, (group, field) in environment_names().items():
            if variable in environ:
                values.setdefault(group, {})[field] = environ[variable]
        return values


class ControlPlaneSettings(BaseSettings):
    """Everything the control plane needs to know, in groups, with fail-fast validation."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_default=True)

    store: StoreSettings = Field(default_factory=StoreSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    sources: SourceSettings = Field(default_factory=SourceSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    policies: PolicySettings = Field(default_factory=PolicySettings)
    orchestrator: OrchestratorSettings = Field(default_factory=OrchestratorSettings)
    actions: ActionsSettings = Field(default_factory=ActionsSettings)
    failover: FailoverSettings = Field(default_factory=FailoverSettings)
    backups: BackupSettings = Field(default_factory=BackupSettings)
    leader: LeaderSettings = Field(default_factory=LeaderSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _FlatEnvironment(settings_cls)

    def with_values(self, **groups: Mapping[str, Any]) -> ControlPlaneSettings:
        """A copy with some values of some groups changed and everything validated again (errors
        name the group and field), e.g. a command-line option over its variable:
        ``settings.with_values(api={"port": 9000})``."""
        data: dict[str, dict[str, Any]] = {
            name: dict(getattr(self, name)) for name in type(self).model_fields
        }
        for name, values in groups.items():
            data[name].update(values)
        return type(self).model_validate(data)


def _groups() -> dict[str, type[BaseModel]]:
    groups: dict[str, type[BaseModel]] = {}
    for name, field in ControlPlaneSettings.model_fields.items():
        group = field.annotation
        if not (isinstance(group, type) and issubclass(group, BaseModel)):
            raise TypeError(f"settings field {name} is not a group")
        groups[name] = group
    return groups


def environment_names() -> dict[str, tuple[str, str]]:
    """Every ``CONTROLPLANE_*`` variable → (group, field), e.g.
    ``CONTROLPLANE_ORCHESTRATOR`` → ``("orchestrator", "kind")``."""
    return {
        _env_key(name, field): (group_name, name)
        for group_name, group in _groups().items()
        for name, field in group.model_fields.items()
    }


def setting_name(location: tuple[int | str, ...]) -> str | None:
    """The variable a validation error's location points at (``("sources", "prometheus_url")``
    → ``CONTROLPLANE_PROMETHEUS_URL``), or None for a check of a whole group."""
    if len(location) < 2:
        return None
    group = _groups().get(str(location[0]))
    if group is None:
        return None
    key = str(location[1])
    for name, field in group.model_fields.items():
        if key in {name, field.validation_alias}:
            return _env_key(name, field)
    return None


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """``CONTROLPLANE_*`` variables in ``environ`` that are no setting (a typo, an old name)."""
    known = environment_names()
    return sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
    )
