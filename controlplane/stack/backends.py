"""The real backends the product talks to, each startable on loopback ports of our choosing.

One class per backend. Each knows how to prepare its work folder, the command that runs it, a health
check that really talks to it, and how to read its version from the running server. Both the local
demo stack (``controlplane stack up``) and the test fixtures use these classes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
import psycopg
import redis
import yaml

from controlplane.core.processes import (
    BackendStartError,
    ServerProcess,
    chown_tree,
    kill_processes_under,
    port_is_free,
    require_executable,
    run_checked,
    tail,
)
from controlplane.stack.settings import StackSettings

#: Errors a health or version probe may raise while a server is still starting or is gone.
PROBE_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    psycopg.Error,
    redis.RedisError,
    OSError,
    ValueError,
)

BOOTSTRAP_HINT = "run `make bootstrap`, or set the STACK_* variable that points at it"


class Backend(ABC):
    """A server process on loopback with a work folder, a log file and a real health check."""

    name: ClassVar[str]
    #: Signal that asks the server for a clean, fast shutdown.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    #: Whether the server refuses to run as root (then it runs as ``settings.run_as``).
    needs_unprivileged_user: ClassVar[bool] = False

    #: Flag that makes the binary print its version and exit.
    version_flag: ClassVar[tuple[str, ...]] = ("--version",)

    def __init__(self, *, settings: StackSettings, workdir: Path, ports: Mapping[str, int]) -> None:
        self.settings = settings
        self.workdir = workdir
        self.ports = dict(ports)
        self.process: ServerProcess | None = None
        self.log_dir: Path = workdir / "log"
        self._version: str | None = None

    # -- what each backend defines ---------------------------------------------------------
    @abstractmethod
    def executable(self) -> Path:
        """The binary this backend runs (checked before anything else)."""

    @abstractmethod
    def command(self) -> list[str]:
        """argv of the server process."""

    @abstractmethod
    def healthy(self) -> bool:
        """True when the server answers a real request."""

    @abstractmethod
    def query_version(self) -> str:
        """The version as reported by the running server (or its binary)."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Write configuration and initialise data before the first start."""

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def main_port(self) -> int:
        return next(iter(self.ports.values()))

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def user(self) -> str | None:
        return self.settings.run_as if self.needs_unprivileged_user else None

    # -- lifecycle -------------------------------------------------------------------------
    def spawn(self) -> None:
        """Start the process without waiting for it to be healthy."""
        require_executable(self.name, self.executable(), BOOTSTRAP_HINT)
        if os.geteuid() == 0 and self.needs_unprivileged_user and self.user is None:
            raise BackendStartError(
                self.name,
                f"refuses to run as root and the service account is missing ({BOOTSTRAP_HINT})",
            )
        for label, port in self.ports.items():
            if not port_is_free(port):
                raise BackendStartError(self.name, f"port {port} ({label}) is already in use")
        if self.process is not None:  # a previous run of this backend (maybe killed): reap it
            self.process.stop(sig=signal.SIGKILL, timeout=10)
            self.process = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.prepare()
        chown_tree(self.workdir, self.user)
        self.process = ServerProcess(
            name=self.name,
            argv=self.command(),
            log_path=self.log_path,
            user=self.user,
            env=self.environment(),
            cwd=self.workdir,
        )
        self.process.start()

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Poll the health check until it passes; fail naming the backend with its log tail."""
        limit = self.settings.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            if self.process is not None:
                code = self.process.exit_code()
                if code is not None:
                    raise BackendStartError(
                        self.name,
                        f"exited with status {code} during start",
                        log_tail=self.log_tail(),
                    )
            if self._safe_healthy():
                return
            if time.monotonic() > deadline:
                raise BackendStartError(
                    self.name, f"not healthy after {limit:.0f} s", log_tail=self.log_tail()
                )
            time.sleep(0.25)

    def start(self, timeout: float | None = None) -> None:
        self.spawn()
        try:
            self.wait_healthy(timeout)
        except BaseException:  # not healthy, or interrupted: nothing is left running
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None:
            self.process.stop(sig=self.stop_signal, timeout=timeout)
            self.process = None
        self.kill_leftovers()

    def kill_leftovers(self) -> None:  # noqa: B027 - optional hook
        """Once its process group is gone: SIGKILL what the server left running elsewhere."""

    def _safe_healthy(self) -> bool:
        try:
            return self.healthy()
        except PROBE_ERRORS:
            return False

    def version(self) -> str:
        if self._version is None:
            self._version = self.query_version()
        return self._version

    def binary_version(self) -> str:
        """The version the installed binary prints (no server needed)."""
        require_executable(self.name, self.executable(), BOOTSTRAP_HINT)
        output = run_checked(
            self.name,
            [str(self.executable()), *self.version_flag],
            user=self.user,
            env=self.environment(),
            timeout=60,
        )
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        return lines[0] if lines else "?"

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def describe(self) -> str:
        return f"{self.name} on 127.0.0.1:{self.main_port}"


def _http_get_json(url: str, timeout: float = 2.0) -> Any:
    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return response.json()


# ---------------------------------------------------------------------------------------------
# PostgreSQL: a primary and a streaming replica
# ---------------------------------------------------------------------------------------------


class PostgresPrimary(Backend):
    name = "postgresql-primary"
    stop_signal = signal.SIGINT  # "fast" shutdown
    needs_unprivileged_user = True
    superuser = "postgres"

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        extra_conf: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.extra_conf = dict(extra_conf or {})

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.workdir / "socket"

    @property
    def port(self) -> int:
        return self.ports["postgres"]

    def executable(self) -> Path:
        return self.settings.pg_bindir / "postgres"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def prepare(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").exists():
            return
        chown_tree(self.workdir, self.user)
        run_checked(
            self.name,
            [
                str(self.settings.pg_bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            user=self.user,
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "wal_keep_size": "'256MB'",
            "hot_standby": "on",
            "hot_standby_feedback": "on",
            "logging_collector": "off",
            "log_line_prefix": "'%m [%p] '",
            **self.extra_conf,
        }
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as handle:
            handle.write("\n# --- written by controlplane.stack ---\n")
            for key, value in conf.items():
                handle.write(f"{key} = {value}\n")
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
            "host replication all 127.0.0.1/32 trust\n",
            encoding="utf-8",
        )

    def command(self) -> list[str]:
        # Port and socket folder on the command line so a copied data folder (replica) can override.
        return [
            str(self.executable()),
            "-D",
            str(self.data_dir),
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
        ]

    def healthy(self) -> bool:
        with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return row is not None and row[0] is False

    def kill_leftovers(self) -> None:
        """Server processes of the data folder that outlived their postmaster (each leads its
        own process group: a stopped or stuck one survives a SIGKILLed postmaster)."""
        kill_processes_under(self.data_dir, program=self.executable().name)

    def query_version(self) -> str:
        with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"


class PostgresReplica(PostgresPrimary):
    """A hot standby fed by streaming replication from ``primary`` through a replication slot."""

    name = "postgresql-replica"

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        primary: PostgresPrimary,
        slot: str = "replica_1",
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.primary = primary
        self.slot = slot

    def prepare(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").exists():
            return
        chown_tree(self.workdir, self.user)
        run_checked(
            self.name,
            [
                str(self.settings.pg_bindir / "pg_basebackup"),
                "-d",
                f"host=127.0.0.1 port={self.primary.port} user={self.primary.superuser} "
                f"application_name={self.slot}",
                "-D",
                str(self.data_dir),
                "--wal-method=stream",
                "--write-recovery-conf",
                "--create-slot",
                f"--slot={self.slot}",
                "--no-sync",
                "--checkpoint=fast",
            ],
            user=self.user,
        )

    def healthy(self) -> bool:
        with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
            recovering = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            streaming = conn.execute(
                "SELECT status FROM pg_stat_wal_receiver WHERE status = 'streaming'"
            ).fetchone()
        return recovering is not None and recovering[0] is True and streaming is not None


# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------


class Redis(Backend):
    """Redis on loopback. Without persistence by default (the demo's cache and stream); with
    ``appendfsync`` it keeps an append-only file as production does (``always``: a write is on
    disk before Redis answers it, so an acknowledged movement survives a SIGKILL)."""

    name = "redis"

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        appendfsync: Literal["always", "everysec"] | None = None,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.appendfsync = appendfsync

    @property
    def port(self) -> int:
        return self.ports["redis"]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def executable(self) -> Path:
        return self.settings.redis_server

    def command(self) -> list[str]:
        return [
            str(self.executable()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir),
            "--save",
            "",
            *(
                ["--appendonly", "yes", "--appendfsync", self.appendfsync]
                if self.appendfsync
                else ["--appendonly", "no"]
            ),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def healthy(self) -> bool:
        with self.client() as client:
            return bool(client.ping())

    def query_version(self) -> str:
        with self.client() as client:
            info = client.info("server")
        return f"Redis {info['redis_version']}"


# ---------------------------------------------------------------------------------------------
# Prometheus and Alertmanager
# ---------------------------------------------------------------------------------------------


class Prometheus(Backend):
    """Prometheus with the caller's configuration (dict) and rule files (name -> YAML text)."""

    name = "prometheus"

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        config: Mapping[str, Any] | None = None,
        rules: Mapping[str, str] | None = None,
        backfill: str | None = None,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.config: dict[str, Any] = dict(config or {})
        self.rules = dict(rules or {})
        #: OpenMetrics text turned into TSDB blocks before the first start (history for tests).
        self.backfill = backfill

    @property
    def port(self) -> int:
        return self.ports["http"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    def executable(self) -> Path:
        return self.settings.prometheus

    def prepare(self) -> None:
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        for filename, text in self.rules.items():
            (rules_dir / filename).write_text(text, encoding="utf-8")
        config = dict(self.config)
        config.setdefault("global", {"scrape_interval": "15s", "evaluation_interval": "15s"})
        if self.rules:
            files = list(config.get("rule_files", []))
            files.append(str(rules_dir / "*"))
            config["rule_files"] = files
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        if self.backfill is not None and not (self.workdir / "data").exists():
            source = self.workdir / "backfill.om"
            source.write_text(self.backfill, encoding="utf-8")
            run_checked(
                self.name,
                [
                    str(self.settings.promtool),
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    str(source),
                    str(self.workdir / "data"),
                ],
                user=None,
                timeout=300,
            )

    def command(self) -> list[str]:
        return [
            str(self.executable()),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--log.level=info",
        ]

    def healthy(self) -> bool:
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def query_version(self) -> str:
        data = _http_get_json(f"{self.url}/api/v1/status/buildinfo")
        return f"Prometheus {data['data']['version']}"


class Alertmanager(Backend):
    name = "alertmanager"

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.config: dict[str, Any] = dict(
            config
            or {
                "route": {"receiver": "null", "group_wait": "1s", "group_interval": "5s"},
                "receivers": [{"name": "null"}],
            }
        )

    @property
    def port(self) -> int:
        return self.ports["http"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "alertmanager.yml"

    def executable(self) -> Path:
        return self.settings.alertmanager

    def prepare(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")

    def command(self) -> list[str]:
        return [
            str(self.executable()),
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ]

    def healthy(self) -> bool:
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def query_version(self) -> str:
        data = _http_get_json(f"{self.url}/api/v2/status")
        return f"Alertmanager {data['versionInfo']['version']}"


# ---------------------------------------------------------------------------------------------
# Elasticsearch (integ-test-zip distribution on the machine's JDK)
# ---------------------------------------------------------------------------------------------


class Elasticsearch(Backend):
    name = "elasticsearch"
    needs_unprivileged_user = True

    @property
    def port(self) -> int:
        return self.ports["http"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "config"

    def executable(self) -> Path:
        return self.settings.es_home() / "bin" / "elasticsearch"

    def prepare(self) -> None:
        java = self.settings.java_home / "bin" / "java"
        if not java.exists():
            raise BackendStartError(self.name, f"no Java runtime at {java} ({BOOTSTRAP_HINT})")
        if self.conf_dir.exists():
            shutil.rmtree(self.conf_dir)
        shutil.copytree(self.settings.es_home() / "config", self.conf_dir)
        settings = {
            "cluster.name": f"stack-{self.port}",
            "node.name": "node-1",
            "path.data": str(self.workdir / "data"),
            "path.logs": str(self.workdir / "log" / "es"),
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "transport.port": self.ports["transport"],
            "discovery.type": "single-node",
            "xpack.security.enabled": False,
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.destructive_requires_name": False,
        }
        (self.conf_dir / "elasticsearch.yml").write_text(
            yaml.safe_dump(settings, sort_keys=False), encoding="utf-8"
        )
        (self.workdir / "log" / "es").mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(exist_ok=True)

    @property
    def tmp_dir(self) -> Path:
        """The server's temporary files, removed with its work directory (by default they go
        to new ``/tmp/elasticsearch-*`` and ``/tmp/final-flags*`` folders on every start, left
        there)."""
        return self.workdir / "tmp"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        heap = self.settings.elasticsearch_heap
        env.update(
            ES_PATH_CONF=str(self.conf_dir),
            ES_JAVA_HOME=str(self.settings.java_home),
            ES_JAVA_OPTS=f"-Xms{heap} -Xmx{heap}",
        )
        if self.tmp_dir.is_dir():  # made by ``prepare``; the launcher refuses a missing one
            env["ES_TMPDIR"] = str(self.tmp_dir)
            # The launcher's own JVM (its ``final-flags*`` folder of every start).
            env["CLI_JAVA_OPTS"] = f"-Djava.io.tmpdir={self.tmp_dir}"
        env.pop("JAVA_HOME", None)
        return env

    def command(self) -> list[str]:
        return [str(self.executable())]

    def binary_version(self) -> str:
        require_executable(self.name, self.executable(), BOOTSTRAP_HINT)
        env = self.environment()
        env["ES_PATH_CONF"] = str(self.settings.es_home() / "config")
        output = run_checked(
            self.name, [str(self.executable()), "--version"], user=self.user, env=env, timeout=120
        )
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        return lines[0] if lines else "?"

    def healthy(self) -> bool:
        response = httpx.get(
            f"{self.url}/_cluster/health", params={"wait_for_status": "yellow", "timeout": "1s"}
        )
        return response.status_code == 200 and response.json()["status"] in {"green", "yellow"}

    def query_version(self) -> str:
        data = _http_get_json(f"{self.url}/_nodes/_local", timeout=5)
        node = next(iter(data["nodes"].values()))
        return f"Elasticsearch {node['version']}"


# ---------------------------------------------------------------------------------------------
# Jaeger v2 with in-memory storage
# ---------------------------------------------------------------------------------------------


class Jaeger(Backend):
    name = "jaeger"
    version_flag = ("version",)

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['query_http']}"

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_http']}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_grpc']}"

    @property
    def main_port(self) -> int:
        return self.ports["query_http"]

    @property
    def config_path(self) -> Path:
        return self.workdir / "jaeger.yaml"

    def executable(self) -> Path:
        return self.settings.jaeger_binary()

    def prepare(self) -> None:
        ports = self.ports
        config = {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["jaeger_storage_exporter"],
                    }
                },
                "telemetry": {
                    "resource": {"service.name": "jaeger"},
                    "metrics": {
                        "level": "basic",
                        "readers": [
                            {
                                "pull": {
                                    "exporter": {
                                        "prometheus": {
                                            "host": "127.0.0.1",
                                            "port": ports["metrics"],
                                        }
                                    }
                                }
                            }
                        ],
                    },
                    "logs": {"level": "info"},
                },
            },
            "extensions": {
                "healthcheckv2": {
                    "use_v2": True,
                    "http": {"endpoint": f"127.0.0.1:{ports['health']}"},
                },
                "jaeger_query": {
                    "storage": {"traces": "memstore"},
                    "http": {"endpoint": f"127.0.0.1:{ports['query_http']}"},
                    "grpc": {"endpoint": f"127.0.0.1:{ports['query_grpc']}"},
                },
                "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 100000}}}},
            },
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{ports['otlp_grpc']}"},
                        "http": {"endpoint": f"127.0.0.1:{ports['otlp_http']}"},
                    }
                }
            },
            "processors": {"batch": {"timeout": "200ms"}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    def command(self) -> list[str]:
        return [str(self.executable()), f"--config={self.config_path}"]

    def healthy(self) -> bool:
        health = httpx.get(f"http://127.0.0.1:{self.ports['health']}/status", timeout=2)
        services = httpx.get(f"{self.query_url}/api/services", timeout=2)
        return health.status_code == 200 and services.status_code == 200

    def query_version(self) -> str:
        return f"Jaeger {self.binary_version()}"

    def binary_version(self) -> str:
        """``jaeger version`` prints a JSON object with the release tag set at build time."""
        require_executable(self.name, self.executable(), BOOTSTRAP_HINT)
        output = run_checked(self.name, [str(self.executable()), "version"], user=None, timeout=30)
        for line in output.splitlines():
            line = line.strip()
            if line.startswith("{"):
                info = json.loads(line)
                if isinstance(info, dict) and info.get("gitVersion"):
                    return str(info["gitVersion"])
        raise BackendStartError(self.name, f"`jaeger version` printed no version: {output!r}")


# ---------------------------------------------------------------------------------------------
# etcd (Patroni's leader lease, and the Kubernetes API server's store: one etcd build of
# `make bootstrap`, from the Go module proxy)
# ---------------------------------------------------------------------------------------------


class Etcd(Backend):
    """A single-member etcd on loopback, plain HTTP (nothing leaves the machine)."""

    name = "etcd"
    port_labels: ClassVar[tuple[str, ...]] = ("client", "peer")

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        name: str | None = None,
        progress_notify_interval_s: float | None = None,
    ) -> None:
        """``progress_notify_interval_s``: how often watches hear the current revision when
        nothing they watch changes (etcd's default: 10 minutes)."""
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        if name is not None:  # a second etcd beside the first (its own log and member name)
            self.name = name  # type: ignore[misc]
        self.progress_notify_interval_s = progress_notify_interval_s

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['client']}"

    def executable(self) -> Path:
        return self.settings.kubernetes_binary("etcd", "ETCD_VERSION")

    def command(self) -> list[str]:
        client, peer = self.url, f"http://127.0.0.1:{self.ports['peer']}"
        return [
            str(self.executable()),
            f"--name={self.name}",
            f"--data-dir={self.workdir / 'data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.name}={peer}",
            "--initial-cluster-state=new",
            "--log-level=warn",
            *(
                [f"--watch-progress-notify-interval={self.progress_notify_interval_s:g}s"]
                if self.progress_notify_interval_s is not None
                else []
            ),
            # Tests and the demo need no durability against power loss.
            *(["--unsafe-no-fsync"] if self.settings.etcd_unsafe_no_fsync else []),
        ]

    def healthy(self) -> bool:
        answer = httpx.get(f"{self.url}/health", timeout=2)
        return answer.status_code == 200 and answer.json().get("health") == "true"

    def query_version(self) -> str:
        return f"etcd {_http_get_json(f'{self.url}/version')['etcdserver']}"

    def binary_version(self) -> str:
        output = super().binary_version()
        return output.replace("etcd Version:", "etcd").strip()


#: Ports each backend needs, by label (the first one is the one users talk to).
PORT_LABELS: dict[str, tuple[str, ...]] = {
    PostgresPrimary.name: ("postgres",),
    PostgresReplica.name: ("postgres",),
    Redis.name: ("redis",),
    Prometheus.name: ("http",),
    Alertmanager.name: ("http",),
    Elasticsearch.name: ("http", "transport"),
    Jaeger.name: ("query_http", "otlp_grpc", "otlp_http", "query_grpc", "health", "metrics"),
    Etcd.name: Etcd.port_labels,
}
