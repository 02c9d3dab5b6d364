"""A seeded control plane (real API process on SQLite, real Jaeger and Elasticsearch), the console
as a process per token, and headless Chromium."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controlplane.core.security import Role
from controlplane.stack.backends import Elasticsearch, Jaeger
from controlplane.store.database import Database
from tests.integration.controlplane.processes import ControlPlaneProcess
from tests.integration.dashboards.browser import Browser, ConsoleProcess, headless_browser
from tests.integration.dashboards.seed import (
    SeededStore,
    index_logs,
    seed_store,
    send_traces,
    utc_now,
)


@dataclass(frozen=True)
class SeededControlPlane:
    process: ControlPlaneProcess
    store: SeededStore
    database_url: str
    traces: dict[str, str]
    log_index: str

    @property
    def url(self) -> str:
        return self.process.url


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="console-") as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def seeded(
    workdir: Path, jaeger: Jaeger, elasticsearch: Elasticsearch
) -> Iterator[SeededControlPlane]:
    now = utc_now()
    database_url = f"sqlite:///{workdir}/controlplane.db"
    database = Database.from_url(database_url)
    database.migrate()
    store = seed_store(database, now=now)
    database.dispose()
    traces = send_traces(
        otlp_http_endpoint=jaeger.otlp_http_endpoint, query_url=jaeger.query_url, now=now
    )
    log_index = index_logs(url=elasticsearch.url, trace_id=traces["slowest"], now=now)
    process = ControlPlaneProcess(
        settings={
            "database_url": database_url,
            "webhook_token": "console-webhook-token",
            "jaeger_url": jaeger.query_url,
            "elasticsearch_url": elasticsearch.url,
            "evaluation_interval_seconds": "3600",
            "leader_election": "false",
        },
        log_path=workdir / "controlplane.log",
    ).start()
    try:
        yield SeededControlPlane(
            process=process,
            store=store,
            database_url=database_url,
            traces=traces,
            log_index=log_index,
        )
    finally:
        process.stop()


def _console(seeded: SeededControlPlane, role: Role, workdir: Path) -> Iterator[ConsoleProcess]:
    folder = workdir / f"console-{role.value}"
    folder.mkdir(exist_ok=True)
    console = ConsoleProcess(
        control_plane=seeded.url, token=seeded.store.tokens[role], workdir=folder
    ).start()
    try:
        yield console
    finally:
        console.stop()


@pytest.fixture(scope="module")
def operator_console(seeded: SeededControlPlane, workdir: Path) -> Iterator[ConsoleProcess]:
    yield from _console(seeded, Role.OPERATOR, workdir)


@pytest.fixture(scope="module")
def viewer_console(seeded: SeededControlPlane, workdir: Path) -> Iterator[ConsoleProcess]:
    yield from _console(seeded, Role.VIEWER, workdir)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_browser() as found:
        yield found
