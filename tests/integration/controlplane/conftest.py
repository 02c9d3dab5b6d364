"""Fresh control-plane databases: one per test, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from controlplane.stack.backends import PostgresPrimary
from controlplane.store.database import Database


@pytest.fixture
def pg_url(postgres_primary: PostgresPrimary) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database (dropped after the test)."""
    name = f"cp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_primary.dsn(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:{postgres_primary.port}/{name}"
    with psycopg.connect(postgres_primary.dsn(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/controlplane.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated store on SQLite, then on PostgreSQL."""
    db = Database.from_url(sqlalchemy_url(database_url), pool_size=20)
    db.migrate()
    yield db
    db.dispose()
