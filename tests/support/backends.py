"""pytest plugin: real backends on free loopback ports, one per test session.

Fixtures (session-scoped): ``postgres_primary``, ``postgres_replica``, ``redis_server``,
``alertmanager``, ``elasticsearch``, ``jaeger``, ``prometheus_factory`` (a callable taking the
test's own configuration and rule files) and ``kubernetes_cluster`` (etcd, the Kubernetes control
plane, KWOK's fake nodes and metrics-server). Function-scoped: ``patroni_factory`` (a callable
starting a Patroni cluster on etcd with the test's options; every cluster it made is stopped
when the test ends), ``patroni_cluster`` (two members, synchronous mode) and
``pgbackrest_factory`` (pgBackRest repositories, with PostgreSQL servers archiving into them;
stopped when the test ends). ``keycloak`` (session-scoped) is the OpenID Connect provider with the
realms ``inventory`` and ``other`` (see ``tests/support/keycloak.py``). A backend that
cannot start fails the test when ``CI=true`` or ``REQUIRE_BACKENDS=1``; elsewhere the test is
skipped with the reason. When a test fails, the log tail of every backend it used is attached to
its report. The terminal summary lists each backend the session started with its version and
address.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from controlplane.core.processes import (
    BackendStartError,
    free_ports,
    kill_processes_under,
    processes_under,
)
from controlplane.stack.backends import (
    PORT_LABELS,
    PROBE_ERRORS,
    Alertmanager,
    Backend,
    Elasticsearch,
    Jaeger,
    PostgresPrimary,
    PostgresReplica,
    Prometheus,
    Redis,
)
from controlplane.stack.keycloak import (
    INVENTORY_REALM,
    OTHER_REALM,
    Keycloak,
    read_deployment_secrets,
)
from controlplane.stack.kubernetes import KubernetesCluster
from controlplane.stack.patroni import PatroniCluster, PatroniMember
from controlplane.stack.pgbackrest import PgBackRestRepository, PgInstance
from controlplane.stack.settings import StackSettings
from tests.support.keycloak import (
    DEPLOYED_REALM,
    KeycloakServer,
    export_deployed_realm,
    otp_secrets_for_tests,
)

B = TypeVar("B", bound=Backend)
T = TypeVar("T")

#: Tests need no crash safety against power loss; commits stay synchronous (acknowledged = in WAL).
TEST_PG_CONF = {"fsync": "off"}


def backends_required() -> bool:
    """CI=true or REQUIRE_BACKENDS=1: a backend that cannot start is a failure, not a skip."""
    ci = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
    required = os.environ.get("REQUIRE_BACKENDS", "").strip().lower() in {"1", "true", "yes"}
    return ci or required


class BackendPool:
    """Starts backends in folders under one base directory and stops them all at the end."""

    def __init__(self, *, settings: StackSettings, base: Path) -> None:
        self.settings = settings
        self.base = base
        self.started: list[Backend] = []
        self.versions: dict[str, str] = {}

    def ports_for(self, name: str) -> dict[str, int]:
        labels = PORT_LABELS[name]
        return dict(zip(labels, free_ports(len(labels)), strict=True))

    def workdir(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.base))

    def start(self, backend: B) -> B:
        backend.start()
        self.started.append(backend)
        key = f"{backend.name} ({backend.describe().split(' on ')[1]})"
        try:
            self.versions[key] = backend.version()
        except PROBE_ERRORS as exc:
            self.versions[key] = f"version unknown: {exc}"
        return backend

    def stop(self, backend: Backend) -> None:
        backend.stop()
        if backend in self.started:
            self.started.remove(backend)

    def stop_all(self) -> None:
        for backend in reversed(self.started):
            backend.stop()
        self.started.clear()


_POOL_KEY = pytest.StashKey[BackendPool]()


def _start_or_report(start: Callable[[], T]) -> T:
    try:
        return start()
    except BackendStartError as exc:
        message = f"backend {exc.backend} could not start: {exc.reason}"
        if backends_required():
            detail = f"\n{exc.log_tail}" if exc.log_tail else ""
            pytest.fail(
                f"{message} (CI mode: a missing backend is a failure){detail}", pytrace=False
            )
        pytest.skip(message)


@pytest.fixture(scope="session")
def stack_settings() -> StackSettings:
    return StackSettings()


@pytest.fixture(scope="session")
def backend_pool(
    request: pytest.FixtureRequest, stack_settings: StackSettings
) -> Iterator[BackendPool]:
    base = Path(tempfile.mkdtemp(prefix="slo-stack-"))
    base.chmod(0o755)  # servers may run as the unprivileged service account
    pool = BackendPool(settings=stack_settings, base=base)
    request.config.stash[_POOL_KEY] = pool
    try:
        yield pool
    finally:
        pool.stop_all()
        left_behind = processes_under(base)
        kill_processes_under(base)
        if os.environ.get("KEEP_BACKENDS") != "1":
            shutil.rmtree(base, ignore_errors=True)
    # A run leaves nothing: a server process that outlived its backend (a PostgreSQL child of
    # a killed postmaster, say) fails the run, named.
    assert not left_behind, "processes left behind by the tests: " + "; ".join(
        f"{pid}: {cmdline}" for pid, cmdline in sorted(left_behind.items())
    )


def launch(pool: BackendPool, cls: type[B], **options: Any) -> B:
    """Start ``cls`` in its own folder on free ports, or fail/skip naming the backend."""
    return _start_or_report(
        lambda: pool.start(
            cls(
                settings=pool.settings,
                workdir=pool.workdir(cls.name),
                ports=pool.ports_for(cls.name),
                **options,
            )
        )
    )


@pytest.fixture(scope="session")
def postgres_primary(backend_pool: BackendPool) -> PostgresPrimary:
    return launch(backend_pool, PostgresPrimary, extra_conf=TEST_PG_CONF)


@pytest.fixture(scope="session")
def postgres_replica(
    backend_pool: BackendPool, postgres_primary: PostgresPrimary
) -> PostgresReplica:
    return launch(backend_pool, PostgresReplica, primary=postgres_primary)


@pytest.fixture(scope="session")
def redis_server(backend_pool: BackendPool) -> Redis:
    return launch(backend_pool, Redis)


@pytest.fixture(scope="session")
def alertmanager(backend_pool: BackendPool) -> Alertmanager:
    return launch(backend_pool, Alertmanager)


@pytest.fixture(scope="session")
def elasticsearch(backend_pool: BackendPool) -> Elasticsearch:
    return launch(backend_pool, Elasticsearch)


@pytest.fixture(scope="session")
def jaeger(backend_pool: BackendPool) -> Jaeger:
    return launch(backend_pool, Jaeger)


@pytest.fixture(scope="session")
def keycloak(backend_pool: BackendPool) -> Iterator[KeycloakServer]:
    """Keycloak with the realms ``inventory`` and ``other``, fresh client secrets and keys, and
    realm ``deployed``: the file ``controlplane stack realm`` exports for a deployment, imported
    with the secrets of its ``--secrets-dir`` (no second server for it)."""

    def start() -> KeycloakServer:
        export = Path(tempfile.mkdtemp(prefix="realm-export-", dir=backend_pool.base))
        realm_file, secrets_dir = export_deployed_realm(export)
        backend = Keycloak(
            settings=backend_pool.settings,
            workdir=backend_pool.workdir(Keycloak.name),
            ports=dict(zip(Keycloak.port_labels, free_ports(2), strict=True)),
            realms=(INVENTORY_REALM, OTHER_REALM),
            import_files={DEPLOYED_REALM: realm_file},
            import_environment=read_deployment_secrets(secrets_dir),
            otp_secrets=otp_secrets_for_tests(),
        )
        began = time.monotonic()
        backend_pool.start(backend)
        server = KeycloakServer(
            backend,
            start_seconds=time.monotonic() - began,
            deployed_realm_file=realm_file,
            deployed_secrets_dir=secrets_dir,
        )
        key = f"{backend.name} (127.0.0.1:{backend.port})"
        if key in backend_pool.versions:
            backend_pool.versions[key] += f", started in {server.start_seconds:.1f} s"
        return server

    server = _start_or_report(start)
    try:
        yield server
    finally:
        server.close()


def _start_cluster(pool: BackendPool) -> KubernetesCluster:
    cluster = KubernetesCluster.on_free_ports(settings=pool.settings, base=pool.workdir("cluster"))
    for backend in cluster.backends:
        pool.start(backend)
    cluster.after_start()
    return cluster


@pytest.fixture(scope="session")
def kubernetes_cluster(backend_pool: BackendPool) -> KubernetesCluster:
    """A real Kubernetes control plane whose pods are simulated by KWOK (no containers run)."""
    return _start_or_report(lambda: _start_cluster(backend_pool))


@pytest.fixture(scope="session")
def inventory_on_kubernetes(kubernetes_cluster: KubernetesCluster) -> list[dict[str, Any]]:
    """deploy/k8s's production overlay (and the policy's two peer services) applied
    server-side to the cluster and rolled out; the applied objects. Tests that change these
    objects put them back."""
    return _start_or_report(kubernetes_cluster.deploy_inventory)


class PrometheusFactory:
    """Starts a Prometheus with the configuration and rule files a test passes."""

    def __init__(self, pool: BackendPool) -> None:
        self.pool = pool
        self.instances: list[Prometheus] = []

    def __call__(
        self,
        *,
        config: Mapping[str, Any],
        rules: Mapping[str, str] | None = None,
        backfill: str | None = None,
    ) -> Prometheus:
        """A new Prometheus; ``backfill`` is OpenMetrics text loaded as history before start."""
        server = launch(self.pool, Prometheus, config=config, rules=rules, backfill=backfill)
        self.instances.append(server)
        return server


@pytest.fixture(scope="session")
def prometheus_factory(backend_pool: BackendPool) -> PrometheusFactory:
    return PrometheusFactory(backend_pool)


class PatroniFactory:
    """Starts Patroni clusters (an etcd and its members) for one test; :meth:`close` stops them
    all (tests kill, freeze and restart members: every cluster is the test's own)."""

    def __init__(self, pool: BackendPool) -> None:
        self.pool = pool
        self.clusters: list[PatroniCluster] = []

    def __call__(
        self,
        *,
        members: int = 2,
        before_start: Callable[[PatroniCluster], None] | None = None,
        **options: Any,
    ) -> PatroniCluster:
        """A cluster of ``members`` started with ``options``; ``before_start`` may change it
        once its ports are known (e.g. point a member at etcd through a relay)."""

        def start() -> PatroniCluster:
            base = self.pool.workdir("patroni")
            base.chmod(0o755)  # the members run as the service account
            cluster = PatroniCluster.on_free_ports(
                settings=self.pool.settings,
                base=base,
                members=members,
                **options,
            )
            self.clusters.append(cluster)
            if before_start is not None:
                before_start(cluster)
            for backend in cluster.backends:
                self.pool.start(backend)
            cluster.after_start()
            return cluster

        return _start_or_report(start)

    def close(self) -> None:
        for cluster in reversed(self.clusters):
            cluster.stop()
            for backend in cluster.backends:
                if backend in self.pool.started:
                    self.pool.started.remove(backend)
        self.clusters.clear()


@pytest.fixture
def patroni_factory(backend_pool: BackendPool) -> Iterator[PatroniFactory]:
    factory = PatroniFactory(backend_pool)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def patroni_cluster(patroni_factory: PatroniFactory) -> PatroniCluster:
    """Two Patroni members on their own etcd, synchronous mode on, the stack's fast timing."""
    return patroni_factory(synchronous_mode=True)


class PgBackRestFactory:
    """pgBackRest repositories of one test (under the session's folder) and the PostgreSQL
    servers it starts archiving into them; :meth:`close` stops those servers."""

    def __init__(self, pool: BackendPool) -> None:
        self.pool = pool
        self.servers: list[PostgresPrimary] = []

    def repository(self, **options: Any) -> PgBackRestRepository:
        """A repository in a folder of its own (configuration written by :meth:`configure`)."""
        base = self.pool.workdir("pgbackrest")
        repository = PgBackRestRepository(settings=self.pool.settings, base=base, **options)
        repository.prepare()
        return repository

    def scratch(self) -> Path:
        """A folder the service account can reach, for restores (tmp_path's parents are not)."""
        folder = self.pool.workdir("restore")
        folder.chmod(0o755)
        return folder / "scratch"

    def configure(self, repository: PgBackRestRepository, instances: list[PgInstance]) -> None:
        """Name the nodes, create the stanza and check that WAL reaches the archive."""

        def configure() -> None:
            repository.write_config(instances)
            repository.stanza_create()
            repository.check()

        _start_or_report(configure)

    def archiving_primary(self, repository: PgBackRestRepository) -> PostgresPrimary:
        """A PostgreSQL primary of its own archiving into ``repository``, the stanza created."""
        primary = launch(
            self.pool, PostgresPrimary, extra_conf={**TEST_PG_CONF, **repository.postgres_conf()}
        )
        self.servers.append(primary)
        self.configure(
            repository,
            [
                PgInstance(
                    data_dir=primary.data_dir, port=primary.port, socket_dir=primary.socket_dir
                )
            ],
        )
        return primary

    def close(self) -> None:
        for server in reversed(self.servers):
            self.pool.stop(server)
        self.servers.clear()


def patroni_instances(cluster: PatroniCluster) -> list[PgInstance]:
    """Every member of a Patroni cluster as a node of a pgBackRest stanza."""
    members: list[PatroniMember] = cluster.members
    return [PgInstance(data_dir=m.data_dir, port=m.port, socket_dir=m.socket_dir) for m in members]


@pytest.fixture
def pgbackrest_factory(backend_pool: BackendPool) -> Iterator[PgBackRestFactory]:
    factory = PgBackRestFactory(backend_pool)
    try:
        yield factory
    finally:
        factory.close()


# -- reporting --------------------------------------------------------------------------------


def _backends_used(item: pytest.Item) -> list[Backend]:
    found: list[Backend] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Backend):
            found.append(value)
        elif isinstance(value, KeycloakServer):
            found.append(value.backend)
        elif isinstance(value, KubernetesCluster):
            found.extend(value.backends)
        elif isinstance(value, PrometheusFactory):
            found.extend(value.instances)
        elif isinstance(value, PatroniCluster):
            found.extend(value.backends)
        elif isinstance(value, PatroniFactory):
            for cluster in value.clusters:
                found.extend(cluster.backends)
        elif isinstance(value, PgBackRestFactory):
            found.extend(value.servers)
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for backend in _backends_used(item):
            report.sections.append(
                (f"{backend.name} log tail ({backend.log_path})", backend.log_tail(60))
            )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    pool = config.stash.get(_POOL_KEY, None)
    if pool is None or not pool.versions:
        return
    terminalreporter.section("backends started for this run")
    for name, version in sorted(pool.versions.items()):
        terminalreporter.write_line(f"{name:45} {version}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/unit are `unit`, under tests/integration are `integration`."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "unit" in parts and not item.get_closest_marker("unit"):
            item.add_marker(pytest.mark.unit)
        elif "integration" in parts and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)


def require_tool(name: str) -> str:
    """Path of a command-line tool the test needs (promtool, amtool, docker-compose, ...).

    Missing: a failure naming the tool in CI mode, a skip with the reason elsewhere.
    """
    found = shutil.which(name)
    if found:
        return found
    message = f"tool {name} is not installed (run `make bootstrap`)"
    if backends_required():
        pytest.fail(f"{message} (CI mode: a missing tool is a failure)", pytrace=False)
    pytest.skip(message)
