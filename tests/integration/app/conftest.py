"""The inventory API and its workers as real processes against the real backends.

``python -m app.serve`` (gunicorn + uvicorn workers) and ``python -m app.worker`` run as
subprocesses with their settings in ``INVENTORY_*`` variables, exactly as an operator starts them.
Each test module gets its own database (migrated with Alembic) and its own movement stream, so
modules cannot see each other's data; SKUs are made unique per test because the Redis cache is
shared by the session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app.migrate import upgrade
from controlplane.core.processes import free_ports, stop_process_group, tail
from controlplane.stack.backends import PostgresPrimary, PostgresReplica, Redis

REPO_ROOT = Path(__file__).resolve().parents[3]


def eventually(
    check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll ``check`` until it returns a truthy value; bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what or 'condition'} not met within {timeout} s (last: {last!r})")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_database(primary: PostgresPrimary) -> str:
    name = f"inv_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(primary.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    upgrade(primary.dsn(name))
    return name


@dataclass
class Databases:
    name: str
    primary: PostgresPrimary
    replica: PostgresReplica | None = None

    @property
    def write_dsn(self) -> str:
        """Multi-host: the primary first, then the replica (used once it is promoted)."""
        hosts = [f"127.0.0.1:{self.primary.port}"]
        if self.replica is not None:
            hosts.append(f"127.0.0.1:{self.replica.port}")
        return f"postgresql://postgres@{','.join(hosts)}/{self.name}"

    @property
    def read_dsn(self) -> str | None:
        return None if self.replica is None else self.replica.dsn(self.name)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.write_dsn, target_session_attrs="read-write") as conn:
            return conn.execute(sql, params).fetchall()


class ManagedProcess:
    """A subprocess in its own process group with its output in a log file."""

    def __init__(self, *, name: str, argv: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, sig)
        if sig == signal.SIGKILL:
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            stop_process_group(self.popen.pid, sig=signal.SIGTERM, timeout=20)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        self.popen = None

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log, lines)


@dataclass
class Api:
    process: ManagedProcess
    port: int
    pidfile: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 10.0), **kwargs)

    def master_pid(self) -> int:
        return int(self.pidfile.read_text().strip())


@dataclass
class Stack:
    """Starts API servers and workers for one module and stops them all at the end."""

    tmp: Path
    base_env: dict[str, str]
    processes: list[ManagedProcess] = field(default_factory=list)

    def env(self, overrides: Mapping[str, str | None]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(self.base_env)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def api(self, *, workers: int = 1, **overrides: str | None) -> Api:
        (port,) = free_ports(1)
        name = f"api-{port}"
        pidfile = self.tmp / f"{name}.pid"
        process = ManagedProcess(
            name=name,
            argv=[
                sys.executable,
                "-m",
                "app.serve",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--pidfile",
                str(pidfile),
                "--metrics-dir",
                str(self.tmp / f"{name}-metrics"),
            ],
            env=self.env(overrides),
            log=self.tmp / f"{name}.log",
        )
        self.processes.append(process)
        process.start()
        api = Api(process=process, port=port, pidfile=pidfile)

        def ready() -> bool:
            if not process.alive():
                raise AssertionError(f"API exited during start:\n{process.log_tail()}")
            try:
                return httpx.get(f"{api.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, timeout=60, what=f"API on port {port} answering")
        return api

    def worker(self, **overrides: str | None) -> ManagedProcess:
        name = f"worker-{len(self.processes)}"
        process = ManagedProcess(
            name=name,
            argv=[sys.executable, "-m", "app.worker"],
            env=self.env(overrides),
            log=self.tmp / f"{name}.log",
        )
        self.processes.append(process)
        process.start()
        eventually(
            lambda: "started on stream" in process.log_tail(200) or not process.alive(),
            timeout=30,
            what=f"{name} starting",
        )
        if "started on stream" not in process.log_tail(200):
            raise AssertionError(f"{name} exited during start:\n{process.log_tail()}")
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log_tail(40)}" for p in self.processes)


def stack_env(*, dbs: Databases, redis: Redis, stream: str) -> dict[str, str]:
    env = {
        "INVENTORY_DATABASE_URL": dbs.write_dsn,
        "INVENTORY_REDIS_URL": redis.url,
        "INVENTORY_STREAM_KEY": stream,
        "INVENTORY_BENCH_ENDPOINTS": "true",
        "INVENTORY_LOG_LEVEL": "INFO",
        "INVENTORY_WORKER_BLOCK_MS": "50",
        "INVENTORY_WORKER_CLAIM_IDLE_MS": "2000",
        "INVENTORY_WORKER_CLAIM_INTERVAL_SECONDS": "1",
        "INVENTORY_WORKER_SWEEP_INTERVAL_SECONDS": "1",
        "INVENTORY_REPLICA_MAX_LAG_SECONDS": "1",
    }
    if dbs.read_dsn is not None:
        env["INVENTORY_REPLICA_URL"] = dbs.read_dsn
    return env


@pytest.fixture(scope="module")
def databases(postgres_primary: PostgresPrimary, postgres_replica: PostgresReplica) -> Databases:
    return Databases(
        name=create_database(postgres_primary), primary=postgres_primary, replica=postgres_replica
    )


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    databases: Databases,
    redis_server: Redis,
) -> Iterator[Stack]:
    env = stack_env(dbs=databases, redis=redis_server, stream=unique("inventory:movements"))
    stack = Stack(tmp=tmp_path_factory.mktemp("inventory"), base_env=env)
    yield stack
    stack.stop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, attach the logs of the API servers and workers the test used."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Stack):
                report.sections.append(("inventory processes", value.logs()))


# -- small API helpers ----------------------------------------------------------------------------


def make_item(client: httpx.Client, *, warehouses: tuple[str, ...] = ("W1",)) -> str:
    sku = unique("SKU")
    assert client.post("/api/v1/items", json={"sku": sku, "name": "Widget"}).status_code == 201
    for code in warehouses:
        response = client.post("/api/v1/warehouses", json={"code": code, "name": code})
        assert response.status_code in (201, 409), response.text
    return sku


def submit(
    client: httpx.Client, body: Mapping[str, Any], *, key: str | None = None
) -> httpx.Response:
    return client.post(
        "/api/v1/movements", json=dict(body), headers={"Idempotency-Key": key or uuid.uuid4().hex}
    )


def wait_status(client: httpx.Client, movement_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the status URL until the movement is applied or dead-lettered."""

    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/v1/movements/{movement_id}").json()
        return body if body.get("status") in ("applied", "dead_letter", "duplicate") else None

    result: dict[str, Any] = eventually(done, timeout=timeout, what=f"movement {movement_id}")
    return result


def stock_of(client: httpx.Client, sku: str) -> dict[str, dict[str, int]]:
    response = client.get(f"/api/v1/stock/{sku}")
    assert response.status_code == 200, response.text
    return {level["warehouse"]: level for level in response.json()["levels"]}


def stock_becomes(
    client: httpx.Client, sku: str, *, warehouse: str, expected: Mapping[str, int]
) -> dict[str, int]:
    """The cache is invalidated right *after* the commit that changed the stock (milliseconds
    after the status URL says "applied"): wait, bounded, until the read shows ``expected``."""

    def matches() -> dict[str, int] | None:
        level = stock_of(client, sku).get(warehouse, {})
        return level if all(level.get(k) == v for k, v in expected.items()) else None

    found: dict[str, int] = eventually(matches, timeout=5, interval=0.05, what=f"{sku} stock")
    return found
