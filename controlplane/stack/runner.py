"""The local demo stack: every backend on its DESIGN.md port, logs in one folder, clean stop.

``controlplane stack up`` starts the processes detached (own sessions) and records them in
``<home>/state.json``; ``down`` and ``status`` work from that file in any later process.

PostgreSQL runs as a Patroni cluster (:mod:`controlplane.stack.topology`): an etcd and two
members whose data stays in the home, so a stopped stack starts again on the same data with
whichever member Patroni lets lead; the control plane gets Patroni as its failover driver.
Every member archives its WAL into one pgBackRest repository in the home
(:mod:`controlplane.stack.pgbackrest`, stanza ``inventory``, the DR policy's retention), kept
across stops like the data; the control plane takes the backups and validates restores.

With ``--kubernetes`` the stack also runs a Kubernetes control plane (etcd, API server,
controllers, scheduler, KWOK nodes, metrics-server; :mod:`controlplane.stack.kubernetes`),
deploys ``deploy/k8s`` to it, writes the admin kubeconfig to ``<home>/kubeconfig`` and runs the
control plane with ``CONTROLPLANE_ORCHESTRATOR=kubernetes`` under its ServiceAccount's token
(``deploy/k8s``'s RBAC). The inventory API still serves the demo traffic from the local
gunicorn master: KWOK's pods run no container.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import httpx
import yaml

from controlplane.backups.errors import PgBackRestError
from controlplane.backups.pgbackrest import PgBackRest
from controlplane.core.config import DEFAULT_DR_POLICY, IdentitySettings
from controlplane.core.errors import ControlPlaneError
from controlplane.core.processes import (
    BackendStartError,
    group_alive,
    kill_processes_under,
    stop_process_group,
)
from controlplane.core.security import Role
from controlplane.stack.backends import (
    PROBE_ERRORS,
    Alertmanager,
    Backend,
    Elasticsearch,
    Etcd,
    Jaeger,
    Prometheus,
    Redis,
)
from controlplane.stack.console import ConsoleSignIn, Dashboards
from controlplane.stack.errors import StackError
from controlplane.stack.keycloak import INVENTORY_REALM, Keycloak, client_secret_file
from controlplane.stack.kubernetes import (
    INVENTORY_NAMESPACE,
    KUBE_ETCD,
    KUBERNETES_ORDER,
    KubernetesCluster,
    MetricsServer,
)
from controlplane.stack.patroni import FAST_TIMING, PatroniCluster, PatroniMember
from controlplane.stack.pgbackrest import PgBackRestRepository, PgInstance
from controlplane.stack.settings import REPO_ROOT, StackSettings
from controlplane.stack.topology import (
    DCS,
    INVENTORY_DATABASE,
    MEMBER_BACKENDS,
    MemberView,
    database_nodes,
    member_views,
    patroni_urls,
)
from controlplane.stack.workload import InventoryAPI, InventoryWorker, TrafficGenerator
from controlplane.store.database import Database
from controlplane.store.errors import UnknownTokenName
from controlplane.store.tokens import authenticate, create_token, revoke_token
from controlplane.targets.policy import load_dr_policy

STATUS_ERRORS: tuple[type[Exception], ...] = (*PROBE_ERRORS, KeyError)
SETTLE_ERRORS: tuple[type[Exception], ...] = (*PROBE_ERRORS, BackendStartError)
#: Reading the repository's database and the leader's system identifier.
SYSTEM_ID_ERRORS: tuple[type[Exception], ...] = (*STATUS_ERRORS, PgBackRestError, ValueError)

ALERTMANAGER_CONFIG = REPO_ROOT / "alerts" / "alertmanager.yml"
#: The pgBackRest repository's folder under ``<home>/data`` (and its name in the stack's events).
BACKUPS = "pgbackrest"
ADMIN_TOKEN_NAME = "stack-admin"
METRICS_TOKEN_NAME = "stack-prometheus"
CONSOLE_TOKEN_NAME = "stack-dashboards"
#: Clients of the identity provider the stack's control plane and console are.
PROBE_CLIENT = "controlplane-probe"
CONSOLE_CLIENT = "inventory-console"


def identity_folder(home: Path) -> Path:
    """Where the stack writes Keycloak's client secrets of realm ``inventory``."""
    return home / "data" / "identity"


class ControlPlane(Backend):
    """``controlplane serve`` on the stack's backends: SQLite store under the stack home, the
    webhook token Alertmanager sends, an admin token (``<home>/admin.token``), a viewer token
    Prometheus scrapes ``/metrics`` with and a viewer token for the console (which only reads:
    people sign in through Keycloak to act); the stack's
    pgBackRest repository for its backups and restore validations. Any other
    ``CONTROLPLANE_*`` variable set in the environment (interval, orchestrator, DR policy, ...)
    passes through."""

    name = "controlplane"

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        home: Path,
        stack_ports: Mapping[str, Mapping[str, int]],
        backups: PgBackRestRepository,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.home = home
        self.stack_ports = stack_ports
        self.backups = backups

    # -- files -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.ports["http"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.workdir / 'controlplane.db'}"

    @property
    def admin_token_file(self) -> Path:
        return self.home / "admin.token"

    @property
    def webhook_token_file(self) -> Path:
        return self.workdir / "webhook.token"

    @property
    def metrics_token_file(self) -> Path:
        return self.workdir / "metrics.token"

    @property
    def console_token_file(self) -> Path:
        return self.workdir / "dashboards.token"

    @property
    def kubeconfig(self) -> Path:
        """The control plane's kubeconfig on a stack with Kubernetes: its ServiceAccount's
        token, so it gets exactly deploy/k8s's Role."""
        return self.workdir / "kubeconfig"

    @property
    def dr_policy(self) -> Path:
        """The DR policy the control plane reads (``CONTROLPLANE_DR_POLICY`` passes through)."""
        return Path(os.environ.get("CONTROLPLANE_DR_POLICY") or DEFAULT_DR_POLICY)

    def prepare_secrets(self, *, on_event: Callable[[str, str], None]) -> None:
        """Before any backend starts: migrate the store, make the webhook token, and make sure
        the admin, scrape and console tokens in the home are valid (new ones otherwise; a new
        admin token is announced once, through ``on_event``)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.webhook_token_file.is_file():
            _write_secret(self.webhook_token_file, secrets.token_urlsafe(32))
        database = Database.from_url(self.database_url)
        try:
            database.migrate()
            _ensure_token(
                database, self.metrics_token_file, name=METRICS_TOKEN_NAME, role=Role.VIEWER
            )
            _ensure_token(
                database, self.console_token_file, name=CONSOLE_TOKEN_NAME, role=Role.VIEWER
            )
            if _ensure_token(
                database, self.admin_token_file, name=ADMIN_TOKEN_NAME, role=Role.ADMIN
            ):
                token = self.admin_token_file.read_text(encoding="utf-8").strip()
                on_event(self.name, f"admin token {token} (saved in {self.admin_token_file})")
        finally:
            database.dispose()

    # -- Backend -----------------------------------------------------------------------------
    def prepare(self) -> None:
        self.prepare_secrets(on_event=lambda name, event: None)  # idempotent: kept when valid

    def executable(self) -> Path:
        return Path(sys.executable)

    def command(self) -> list[str]:
        return [str(self.executable()), "-m", "controlplane.commands.serve", "--log-level", "info"]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CONTROLPLANE_WEBHOOK_TOKEN", None)  # the stack's token file is the one
        # Patroni owns the members' data folders: local fencing must never act on them.
        env.pop("CONTROLPLANE_DATABASE_DATA_DIRS", None)
        ports = self.stack_ports
        env.update(
            {
                "CONTROLPLANE_HOST": "127.0.0.1",
                "CONTROLPLANE_PORT": str(self.port),
                "CONTROLPLANE_DATABASE_URL": self.database_url,
                "CONTROLPLANE_DATA_DIR": str(self.workdir),
                "CONTROLPLANE_WEBHOOK_TOKEN_FILE": str(self.webhook_token_file),
                "CONTROLPLANE_PROMETHEUS_URL": f"http://127.0.0.1:{ports[Prometheus.name]['http']}",
                "CONTROLPLANE_ELASTICSEARCH_URL": (
                    f"http://127.0.0.1:{ports[Elasticsearch.name]['http']}"
                ),
                "CONTROLPLANE_JAEGER_URL": f"http://127.0.0.1:{ports[Jaeger.name]['query_http']}",
                # The members' PostgreSQL (DR checks and view) and their Patroni REST APIs:
                # Patroni fails over, the control plane follows, decides and audits.
                "CONTROLPLANE_DATABASE_NODES": database_nodes(ports),
                "CONTROLPLANE_DATABASE_NAME": INVENTORY_DATABASE,
                "CONTROLPLANE_FAILOVER_DRIVER": "patroni",
                "CONTROLPLANE_PATRONI_URLS": patroni_urls(ports),
                # Its backups and restore validations, in the stack's repository.
                **self.backups.control_plane_environment(),
            }
        )
        env.setdefault("CONTROLPLANE_FAILOVER_MODE", "auto")
        if KubernetesCluster.API_SERVER in ports:  # Deployments and HPAs of the stack's cluster
            env.setdefault("CONTROLPLANE_ORCHESTRATOR", "kubernetes")
            env.setdefault("CONTROLPLANE_KUBERNETES_NAMESPACE", INVENTORY_NAMESPACE)
            env["CONTROLPLANE_KUBERNETES_KUBECONFIG"] = str(self.kubeconfig)
        if Keycloak.name in ports:  # people and programs sign in; it calls the API as a client
            env["CONTROLPLANE_OIDC_ISSUER"] = (
                f"http://127.0.0.1:{ports[Keycloak.name]['http']}/realms/{INVENTORY_REALM}"
            )
            env["CONTROLPLANE_INVENTORY_CLIENT_SECRET_FILE"] = str(
                client_secret_file(identity_folder(self.home), PROBE_CLIENT)
            )
        if InventoryAPI.name in ports:  # the demo's app: scaled through its gunicorn master
            env.setdefault("CONTROLPLANE_ORCHESTRATOR", "local")
            env.setdefault(
                "CONTROLPLANE_LOCAL_PIDFILE",
                str(self.home / "data" / InventoryAPI.name / "gunicorn.pid"),
            )
        return env

    def kill_leftovers(self) -> None:
        """A restore validation's scratch server (in the control plane's folder, in a session
        of its own) when the control plane was stopped in the middle of one."""
        kill_processes_under(self.workdir)

    def _headers(self) -> dict[str, str]:
        token = self.admin_token_file.read_text(encoding="utf-8").strip()
        return {"Authorization": f"Bearer {token}"}

    def healthy(self) -> bool:
        answer = httpx.get(f"{self.url}/api/v1/health", headers=self._headers(), timeout=2)
        return answer.status_code == 200

    def query_version(self) -> str:
        answer = httpx.get(f"{self.url}/api/v1/openapi.json", headers=self._headers(), timeout=2)
        answer.raise_for_status()
        return f"controlplane {_package_version()} (API {answer.json()['info']['version']})"

    def binary_version(self) -> str:
        return f"controlplane {_package_version()}"


def _package_version() -> str:
    try:
        return package_version("inventory-slo-controlplane")
    except PackageNotFoundError:
        return "unknown"


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(0o600)


def _ensure_token(database: Database, path: Path, *, name: str, role: Role) -> bool:
    """Keep the token in ``path`` if the store knows it; else revoke the old one of that name,
    create a new one and write it to ``path``. True when a new token was made."""
    secret = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    with database.writer() as session:
        if secret and authenticate(session, secret=secret) is not None:
            return False
        with contextlib.suppress(UnknownTokenName):
            revoke_token(session, name=name, at=datetime.now(UTC))
        _, secret = create_token(session, name=name, role=role, at=datetime.now(UTC))
    _write_secret(path, secret)
    return True


#: Demo ports on loopback (DESIGN.md). Tests never use these: they pick free ports.
DEMO_PORTS: dict[str, dict[str, int]] = {
    DCS: {"client": 2379, "peer": 2380},
    MEMBER_BACKENDS[0]: {"postgres": 5432, "rest": 8008},
    MEMBER_BACKENDS[1]: {"postgres": 5433, "rest": 8009},
    Redis.name: {"redis": 6379},
    Prometheus.name: {"http": 9090},
    Alertmanager.name: {"http": 9093},
    Elasticsearch.name: {"http": 9200, "transport": 9300},
    Keycloak.name: {"http": 8180, "management": 9180},
    Jaeger.name: {
        "query_http": 16686,
        "otlp_grpc": 4317,
        "otlp_http": 4318,
        "query_grpc": 16685,
        "health": 13133,
        "metrics": 8888,
    },
    KUBE_ETCD: {"client": 2381, "peer": 2382},
    "kube-apiserver": {"https": 6443},
    "kube-controller-manager": {"https": 10257},
    "kube-scheduler": {"https": 10259},
    "kwok": {"http": 10247},
    MetricsServer.name: {"https": 4443},
    InventoryAPI.name: {"http": 8000},
    InventoryWorker.name: {"metrics": 9101},
    ControlPlane.name: {"http": 8080},
    Dashboards.name: {"http": 8050},
    TrafficGenerator.name: {},
}

#: Start order; stop runs in reverse (but the Patroni members replicas first, the leader last).
#: The members start together once etcd runs (Patroni decides who leads); the stack goes on
#: once one leads and the other streams from it. A stack with Kubernetes starts the cluster
#: (KUBERNETES_ORDER) after Jaeger: see order_for.
ORDER: tuple[str, ...] = (
    Elasticsearch.name,
    Keycloak.name,
    DCS,
    *MEMBER_BACKENDS,
    Redis.name,
    Prometheus.name,
    Alertmanager.name,
    Jaeger.name,
    InventoryAPI.name,
    InventoryWorker.name,
    ControlPlane.name,
    Dashboards.name,
    TrafficGenerator.name,
)


def order_for(*, kubernetes: bool) -> tuple[str, ...]:
    """The start order of a stack with or without the Kubernetes cluster (which must run, with
    deploy/k8s applied, before the control plane reads it)."""
    if not kubernetes:
        return ORDER
    cut = ORDER.index(Jaeger.name) + 1
    return (*ORDER[:cut], *KUBERNETES_ORDER, *ORDER[cut:])


def shifted_ports(offset: int) -> dict[str, dict[str, int]]:
    """The demo ports moved by ``offset`` (for a machine where the demo ports are taken)."""
    shifted = {
        name: {label: port + offset for label, port in ports.items()}
        for name, ports in DEMO_PORTS.items()
    }
    highest = max(port for ports in shifted.values() for port in ports.values())
    lowest = min(port for ports in shifted.values() for port in ports.values())
    if lowest < 1024 or highest > 65535:
        raise StackError(f"port offset {offset} puts ports outside 1024-65535")
    return shifted


def stop_order(order: Sequence[str], *, leader: str | None) -> list[str]:
    """Reverse start order, but the Patroni members replicas first and ``leader`` last: a
    leader stopped first would hand its lease to a replica that is about to stop too."""
    names = list(reversed(order))
    members = sorted(
        (name for name in names if name in MEMBER_BACKENDS), key=lambda name: name == leader
    )
    spots = iter(members)
    return [next(spots) if name in MEMBER_BACKENDS else name for name in names]


def _read_state_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StackError(f"unreadable stack state file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise StackError(f"unreadable stack state file {path}: not a JSON object")
    return raw


@dataclass(frozen=True)
class BackendStatus:
    name: str
    port: int
    pid: int | None
    running: bool
    healthy: bool
    version: str
    log: Path


def demo_prometheus_config(
    ports: Mapping[str, Mapping[str, int]], *, controlplane_token_file: Path | None = None
) -> dict[str, Any]:
    """Scrape the stack's own servers; send alerts to the stack's Alertmanager; load SLO rules.

    With ``controlplane_token_file`` the control plane's ``/metrics`` is scraped too, with that
    (viewer) token.
    """
    config: dict[str, Any] = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{ports[Alertmanager.name]['http']}"]}]}
            ]
        },
        "rule_files": [str(REPO_ROOT / "alerts" / "rules" / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{ports[Prometheus.name]['http']}"]}],
            },
            {
                "job_name": "alertmanager",
                "static_configs": [{"targets": [f"127.0.0.1:{ports[Alertmanager.name]['http']}"]}],
            },
            {
                "job_name": "jaeger",
                "static_configs": [{"targets": [f"127.0.0.1:{ports[Jaeger.name]['metrics']}"]}],
            },
        ],
    }
    if Keycloak.name in ports:  # the identity provider's management port
        config["scrape_configs"].append(
            {
                "job_name": "keycloak",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{ports[Keycloak.name]['management']}"]}
                ],
            }
        )
    if InventoryAPI.name in ports:
        config["scrape_configs"].append(
            {
                "job_name": "inventory",
                "static_configs": [{"targets": [f"127.0.0.1:{ports[InventoryAPI.name]['http']}"]}],
            }
        )
    if InventoryWorker.name in ports:
        config["scrape_configs"].append(
            {
                "job_name": "inventory-worker",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{ports[InventoryWorker.name]['metrics']}"]}
                ],
            }
        )
    if controlplane_token_file is not None and ControlPlane.name in ports:
        config["scrape_configs"].append(
            {
                "job_name": "controlplane",
                "authorization": {
                    "type": "Bearer",
                    "credentials_file": str(controlplane_token_file),
                },
                "static_configs": [{"targets": [f"127.0.0.1:{ports[ControlPlane.name]['http']}"]}],
            }
        )
    return config


def demo_alertmanager_config(*, controlplane_port: int, webhook_token_file: Path) -> dict[str, Any]:
    """``alerts/alertmanager.yml`` with the control plane receiver at the stack's port and the
    stack's webhook token file."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    for receiver in config.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook["url"].replace(
                "127.0.0.1:8080", f"127.0.0.1:{controlplane_port}"
            )
            authorization = webhook.get("http_config", {}).get("authorization")
            if authorization is not None:
                authorization["credentials_file"] = str(webhook_token_file)
    return config


class LocalStack:
    """All backends of the product on fixed loopback ports under one home folder."""

    def __init__(
        self,
        *,
        settings: StackSettings,
        home: Path,
        ports: Mapping[str, Mapping[str, int]] = DEMO_PORTS,
        kubernetes: bool = False,
    ) -> None:
        self.settings = settings
        self.home = home
        self.order = order_for(kubernetes=kubernetes)
        self.ports = {name: dict(ports[name]) for name in self.order}
        self.log_dir = home / "logs"
        self.state_path = home / "state.json"
        self.cluster: KubernetesCluster | None = None
        #: The repository every member archives into (its retention set at each start, from
        #: the DR policy).
        self.backups = PgBackRestRepository(
            settings=settings, base=home / "data" / BACKUPS, stanza=INVENTORY_DATABASE
        )
        self.database = PatroniCluster(
            settings=settings,
            etcd=Etcd(settings=settings, workdir=home / "data" / DCS, ports=self.ports[DCS]),
            member_workdirs=[home / "data" / name for name in MEMBER_BACKENDS],
            member_ports=[self.ports[name] for name in MEMBER_BACKENDS],
            timing=FAST_TIMING,
            synchronous_mode=settings.patroni_synchronous_mode,
            parameters=self.backups.postgres_parameters(),
        )
        self.backends = self._build()

    def inventory_client(self) -> IdentitySettings:
        """How an operator's program (``controlplane drill scaling``) calls the stack's
        inventory API: as the stack's control plane does (``controlplane-probe``) when the
        stack runs Keycloak, else without a token."""
        if Keycloak.name not in self.ports:
            return IdentitySettings(oidc_issuer=None, inventory_client_secret_file=None)
        return IdentitySettings(
            oidc_issuer=f"http://127.0.0.1:{self.ports[Keycloak.name]['http']}"
            f"/realms/{INVENTORY_REALM}",
            inventory_client_secret_file=client_secret_file(self.identity_dir, PROBE_CLIENT),
        )

    @property
    def identity_dir(self) -> Path:
        """Keycloak's client secrets of realm ``inventory`` (``<client id>.secret``, 0600),
        new at every start, for the processes that sign in with them."""
        return identity_folder(self.home)

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig of the stack's cluster, for the user (kubectl, k9s, ...)."""
        return self.home / "kubeconfig"

    def _build(self) -> dict[str, Backend]:
        data = self.home / "data"
        api = InventoryAPI(
            settings=self.settings,
            workdir=data / InventoryAPI.name,
            ports=self.ports[InventoryAPI.name],
            stack_ports=self.ports,
            identity_dir=self.identity_dir,
        )
        control_plane = ControlPlane(
            settings=self.settings,
            workdir=data / ControlPlane.name,
            ports=self.ports[ControlPlane.name],
            home=self.home,
            stack_ports=self.ports,
            backups=self.backups,
        )
        keycloak = Keycloak(
            settings=self.settings,
            workdir=data / Keycloak.name,
            ports=self.ports[Keycloak.name],
            secrets_dir=self.identity_dir,
        )
        built: list[Backend] = [
            Elasticsearch(
                settings=self.settings,
                workdir=data / Elasticsearch.name,
                ports=self.ports[Elasticsearch.name],
            ),
            keycloak,
            *self.database.backends,
            Redis(settings=self.settings, workdir=data / Redis.name, ports=self.ports[Redis.name]),
            Prometheus(
                settings=self.settings,
                workdir=data / Prometheus.name,
                ports=self.ports[Prometheus.name],
                config=demo_prometheus_config(
                    self.ports, controlplane_token_file=control_plane.metrics_token_file
                ),
            ),
            Alertmanager(
                settings=self.settings,
                workdir=data / Alertmanager.name,
                ports=self.ports[Alertmanager.name],
                config=demo_alertmanager_config(
                    controlplane_port=control_plane.port,
                    webhook_token_file=control_plane.webhook_token_file,
                ),
            ),
            Jaeger(
                settings=self.settings, workdir=data / Jaeger.name, ports=self.ports[Jaeger.name]
            ),
            api,
            InventoryWorker(
                settings=self.settings,
                workdir=data / InventoryWorker.name,
                ports=self.ports[InventoryWorker.name],
                stack_ports=self.ports,
            ),
            control_plane,
            Dashboards(
                settings=self.settings,
                workdir=data / Dashboards.name,
                ports=self.ports[Dashboards.name],
                control_plane_url=control_plane.url,
                token_file=control_plane.console_token_file,
                sign_in=ConsoleSignIn(
                    issuer=keycloak.issuer(INVENTORY_REALM),
                    client_secret_file=client_secret_file(self.identity_dir, CONSOLE_CLIENT),
                    allow_redirect=lambda uri: keycloak.register_redirect(CONSOLE_CLIENT, uri),
                ),
            ),
            TrafficGenerator(
                settings=self.settings,
                workdir=data / TrafficGenerator.name,
                ports=self.ports[TrafficGenerator.name],
                stack_ports=self.ports,
                api_url=api.url,
                identity_dir=self.identity_dir,
            ),
        ]
        if KubernetesCluster.API_SERVER in self.ports:
            self.cluster = KubernetesCluster(
                settings=self.settings,
                home=self.home / "kubernetes",
                workdirs={name: data / name for name in KUBERNETES_ORDER},
                ports={name: self.ports[name] for name in KUBERNETES_ORDER},
            )
            built.extend(self.cluster.backends)
        for backend in built:
            backend.log_dir = self.log_dir
        return {backend.name: backend for backend in built}

    @classmethod
    def at(
        cls,
        *,
        settings: StackSettings,
        home: Path,
        port_offset: int = 0,
        kubernetes: bool = False,
    ) -> LocalStack:
        """The stack recorded in ``home`` (with the ports it was started on, with or without
        Kubernetes as it was started), else a new one."""
        state = _read_state_file(home / "state.json")
        recorded = state.get("ports")
        alive = any(group_alive(int(pid)) for pid in state.get("pids", {}).values())
        if alive and isinstance(recorded, dict):
            for with_cluster in (False, True):
                if set(recorded) == set(order_for(kubernetes=with_cluster)):
                    return cls(
                        settings=settings, home=home, ports=recorded, kubernetes=with_cluster
                    )
        return cls(
            settings=settings,
            home=home,
            ports=shifted_ports(port_offset),
            kubernetes=kubernetes,
        )

    # -- state file ------------------------------------------------------------------------
    def _read_state(self) -> dict[str, int]:
        raw = _read_state_file(self.state_path)
        return {str(name): int(pid) for name, pid in raw.get("pids", {}).items()}

    def _write_state(self, pids: dict[str, int]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        state = {"pids": pids, "ports": self.ports}
        self.state_path.write_text(json.dumps(state, indent=2), encoding="utf-8")

    def adopt(self, name: str, pid: int) -> None:
        """Record that ``name`` now runs as ``pid`` (a drill restarted it)."""
        pids = self._read_state()
        pids[name] = pid
        self._write_state(pids)

    def running(self) -> dict[str, int]:
        """Backends recorded as started whose process group is still alive."""
        return {name: pid for name, pid in self._read_state().items() if group_alive(pid)}

    # -- lifecycle -------------------------------------------------------------------------
    def up(self, *, on_event: Callable[[str, str], None] = lambda name, event: None) -> None:
        """Start every backend and wait until each is healthy; on failure stop what started."""
        already = self.running()
        if already:
            raise StackError(
                "the stack is already running (" + ", ".join(sorted(already)) + "); "
                "use `controlplane stack status` or `controlplane stack down`"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._note_former_database(on_event=on_event)
        control_plane = self.backends[ControlPlane.name]
        assert isinstance(control_plane, ControlPlane)
        control_plane.prepare_secrets(on_event=on_event)  # Alertmanager and Prometheus use them
        self.prepare_backups(dr_policy=control_plane.dr_policy)
        pids: dict[str, int] = {}
        # The slow ones (JVMs) warm up while the rest start; each is waited for before the
        # backend that needs it: Keycloak before the inventory API (its callers sign in),
        # Elasticsearch before the traffic (the first minutes of SLO data should not be a
        # start-up artefact).
        warming = {InventoryAPI.name: Keycloak.name, TrafficGenerator.name: Elasticsearch.name}
        try:
            for name in self.order:
                backend = self.backends[name]
                slow = warming.pop(name, None)
                if slow is not None:
                    self.backends[slow].wait_healthy()
                    on_event(slow, "healthy")
                on_event(name, "starting")
                backend.spawn()
                assert backend.process is not None
                assert backend.process.pid is not None
                pids[name] = backend.process.pid
                self._write_state(pids)
                if name in MEMBER_BACKENDS:  # they start together: Patroni elects the leader
                    if name == MEMBER_BACKENDS[-1]:
                        leader = self._wait_for_database(on_event=on_event)
                        self.configure_backups(leader, on_event=on_event)
                    continue
                if name not in warming.values():
                    backend.wait_healthy()
                    on_event(name, "healthy")
                if name == KUBERNETES_ORDER[-1]:
                    self._deploy_to_cluster(on_event=on_event)
            for slow in warming.values():  # not waited for yet (a stack without their users)
                self.backends[slow].wait_healthy()
                on_event(slow, "healthy")
        except BackendStartError:
            self.down(on_event=on_event)
            raise

    def _deploy_to_cluster(self, *, on_event: Callable[[str, str], None]) -> None:
        """Once the cluster runs: fake nodes Ready, metrics served, deploy/k8s applied and
        rolled out; the user's and the control plane's kubeconfigs written."""
        cluster = self.cluster
        assert cluster is not None
        cluster.after_start()
        on_event("kubernetes", f"{cluster.nodes} nodes Ready (KWOK), metrics.k8s.io available")
        cluster.deploy_inventory()
        on_event("kubernetes", "deploy/k8s (production overlay) applied and rolled out")
        shutil.copyfile(cluster.admin_kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        control_plane = self.backends[ControlPlane.name]
        assert isinstance(control_plane, ControlPlane)
        cluster.service_account_kubeconfig(
            control_plane.kubeconfig,
            namespace=INVENTORY_NAMESPACE,
            name="controlplane",
            hours=24 * 7,
        )
        on_event("kubernetes", f"kubeconfig for kubectl: {self.kubeconfig}")

    def _wait_for_database(self, *, on_event: Callable[[str, str], None]) -> PatroniMember:
        """Once every member runs: one leads and the others stream from it (whichever Patroni
        chose: on a second start, the member with the newest data). The cluster's
        ``synchronous_mode`` is then set to the stack's setting (``PATCH /config``). The
        member that leads."""
        leader = self.database.wait_ready(timeout=self.settings.start_timeout)
        wanted = self.settings.patroni_synchronous_mode
        try:
            config = httpx.get(f"{leader.api_url}/config", timeout=5).json()
            if config.get("synchronous_mode") is not wanted:
                httpx.patch(
                    f"{leader.api_url}/config", json={"synchronous_mode": wanted}, timeout=5
                ).raise_for_status()
            views = member_views(self.database.cluster_state())
        except PROBE_ERRORS as exc:
            raise BackendStartError(
                leader.name, f"could not set synchronous_mode {wanted}: {exc}"
            ) from exc
        if not self.wait_database_settled(timeout=self.settings.start_timeout):
            raise BackendStartError(
                leader.name, "no member became its synchronous standby", log_tail=leader.log_tail()
            )
        for view in views:
            on_event(view.backend, "healthy")
        on_event(
            "patroni",
            f"{leader.member} leads; synchronous_mode {'on' if wanted else 'off'}",
        )
        return leader

    def prepare_backups(self, *, dr_policy: Path) -> None:
        """Before PostgreSQL starts (its archive command names the repository): the
        repository's folders, and its retention the DR policy's point-in-time recovery."""
        try:
            policy = load_dr_policy(dr_policy)
            self.backups.retention = policy.spec.backups.point_in_time_retention
        except (ControlPlaneError, ValueError) as exc:
            raise StackError(f"the DR policy {dr_policy} gives no retention: {exc}") from exc
        self.backups.prepare()

    def configure_backups(
        self, leader: PatroniMember, *, on_event: Callable[[str, str], None]
    ) -> None:
        """Once the database runs: the stanza names every member, exists (``stanza-create``
        leaves an existing one as it is) and archives (``pgbackrest check`` switches WAL and
        waits until it is in the repository)."""
        repository = self.backups
        repository.write_config(
            [
                PgInstance(data_dir=m.data_dir, port=m.port, socket_dir=m.socket_dir)
                for m in self.database.members
            ]
        )
        self._set_aside_former_repository(leader, on_event=on_event)
        repository.stanza_create()
        repository.check()
        on_event(
            BACKUPS,
            f"stanza {repository.stanza} archives into {repository.repo_path} "
            f"(point-in-time recovery {repository.retention.days} days)",
        )

    def _set_aside_former_repository(
        self, leader: PatroniMember, *, on_event: Callable[[str, str], None]
    ) -> None:
        """When the database was initialised anew (its system identifier is not the one the
        repository archives), the repository cannot serve it: move it aside, kept under a name
        with the former identifier, so that ``stanza-create`` starts a new one."""
        repository = self.backups
        pgbackrest = PgBackRest(
            config=repository.config_path,
            stanza=repository.stanza,
            binary=repository.binary,
            user=repository.user,
        )
        try:
            archived = pgbackrest.info().system_id
            current = int(leader.status()["database_system_identifier"])
        except SYSTEM_ID_ERRORS as exc:
            raise BackendStartError(
                BACKUPS, f"cannot compare the repository with the database: {exc}"
            ) from exc
        if archived is None or archived == current:
            return
        former = repository.base / f"repo-system-{archived}"
        if former.exists():
            raise BackendStartError(
                BACKUPS,
                f"the repository archives database system {archived}, this one is {current}, "
                f"and {former} exists already: move one of them away",
            )
        repository.repo_path.rename(former)
        repository.prepare()
        on_event(
            BACKUPS,
            f"the database is a new one (system {current}): the repository of system "
            f"{archived} is kept in {former}; remove it when done",
        )

    def _note_former_database(self, *, on_event: Callable[[str, str], None]) -> None:
        """Say so when the home still holds the data of the stack's former PostgreSQL pair
        (primary + streaming replica without Patroni): it is not used any more."""
        former = [
            self.home / "data" / name
            for name in ("postgresql-primary", "postgresql-replica")
            if (self.home / "data" / name).is_dir()
        ]
        if former:
            on_event(
                "patroni",
                "the former primary / replica data in "
                + " and ".join(str(path) for path in former)
                + " is not used (the Patroni members keep their own); remove it when done",
            )

    def down(self, *, on_event: Callable[[str, str], None] = lambda name, event: None) -> None:
        """Stop every recorded backend (reverse start order) and forget the state."""
        pids = self._read_state()
        for name in self._stop_order():
            pid = pids.get(name)
            if pid is None:
                continue
            if group_alive(pid):
                on_event(name, "stopping")
                stop_signal = self.backends[name].stop_signal
                stop_process_group(pid, sig=stop_signal, timeout=60)
            self.backends[name].kill_leftovers()
            on_event(name, "stopped")
        if self.state_path.exists():
            self.state_path.unlink()

    def _stop_order(self) -> list[str]:
        leader = self.database.leader()  # None when no member answers
        return stop_order(self.order, leader=None if leader is None else leader.name)

    def database_settled(self) -> bool:
        """A leader, every other member streaming from it and, when the cluster commits
        synchronously, one of them its synchronous standby (the only kind Patroni lets take
        over then)."""
        leader = self.database.leader() if self.database.ready() else None
        if leader is None:
            return False
        try:
            config = httpx.get(f"{leader.api_url}/config", timeout=2).json()
            views = self.database_members()
        except SETTLE_ERRORS:
            return False
        return not config.get("synchronous_mode") or any(
            view.role == "sync_standby" for view in views
        )

    def wait_database_settled(self, timeout: float) -> bool:
        """Until :meth:`database_settled` (True), or False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.database_settled():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def wait_for_member(
        self, member: str, *, leads: bool | None, timeout: float
    ) -> MemberView | None:
        """Until the database is settled (:meth:`database_settled`) with ``member`` leading
        (``leads`` True), streaming from the leader (False) or either (None); its view, or None
        after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.database_settled():
                with contextlib.suppress(BackendStartError):
                    for view in self.database_members():
                        if view.member == member and leads in (None, view.leads):
                            return view
            time.sleep(0.5)
        return None

    def describe_database(self) -> str:
        """One line per member of what Patroni says, or why it says nothing."""
        try:
            return "; ".join(f"{v.member}: {v.describe()}" for v in self.database_members())
        except BackendStartError as exc:
            return str(exc)

    def database_members(self) -> list[MemberView]:
        """Each Patroni member as ``GET /cluster`` shows it (role, state, timeline, lag);
        raises :class:`BackendStartError` when no member answers."""
        return member_views(self.database.cluster_state())

    def status(self) -> Iterator[BackendStatus]:
        pids = self._read_state()
        for name in self.order:
            backend = self.backends[name]
            pid = pids.get(name)
            running = pid is not None and group_alive(pid)
            healthy = running and backend._safe_healthy()
            version = "-"
            if healthy:
                try:
                    version = backend.version()
                except STATUS_ERRORS as exc:
                    version = f"unknown ({exc})"
            yield BackendStatus(
                name=name,
                port=backend.main_port,
                pid=pid,
                running=running,
                healthy=healthy,
                version=version,
                log=backend.log_path,
            )
