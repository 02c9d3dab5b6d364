"""Fixtures of the fault tests: control-plane stores on the real PostgreSQL, tokens, and the
``controlplane serve`` processes a test kills, freezes or cuts off."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from controlplane.core.security import Role
from controlplane.stack.backends import PostgresPrimary
from controlplane.store.database import Database
from controlplane.store.tokens import create_token
from tests.chaos.tools import ServeProcess
from tests.integration.controlplane.processes import leader_view
from tests.support.backends import PrometheusFactory
from tests.support.burn import BurnRig, burn_rig

WEBHOOK_TOKEN = "chaos-webhook-token-0123456789abcdef"


@dataclass
class Store:
    """A control-plane store (PostgreSQL database) with an admin token for the API."""

    url: str
    database: Database
    headers: dict[str, str]

    @property
    def sqlalchemy_url(self) -> str:
        return self.url.replace("postgresql://", "postgresql+psycopg://", 1)


def new_store(primary: PostgresPrimary) -> Store:
    name = f"cp_chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(primary.dsn(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:{primary.port}/{name}"
    database = Database.from_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    database.migrate()
    with database.writer() as session:
        _, secret = create_token(session, name="chaos", role=Role.ADMIN, at=datetime.now(UTC))
    return Store(url=url, database=database, headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def store(postgres_primary: PostgresPrimary) -> Iterator[Store]:
    """A fresh control-plane store on the session's PostgreSQL (dropped after the test)."""
    made = new_store(postgres_primary)
    yield made
    made.database.dispose()
    name = made.url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_primary.dsn(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Replicas:
    """The ``controlplane serve`` processes of one test; all stopped at its end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[ServeProcess] = []

    def start(self, name: str, settings: dict[str, str], port: int | None = None) -> ServeProcess:
        process = ServeProcess(
            settings={"replica_id": name, **settings},
            log_path=self.folder / f"{name}.log",
            port=port,
        )
        self.started.append(process)
        return process.start()

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    started = Replicas(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def health(process: ServeProcess, headers: dict[str, str]) -> dict[str, Any] | None:
    """The replica's view of the leadership (``/api/v1/health``), None when it does not answer."""
    return leader_view(process.url, headers)


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory, prometheus_factory: PrometheusFactory
) -> Iterator[BurnRig]:
    """A burn the test sets, read by a real Prometheus, and a gunicorn master to scale."""
    with burn_rig(tmp_path_factory.mktemp("gunicorn"), prometheus_factory) as started:
        yield started
