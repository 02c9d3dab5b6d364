"""Alembic environment: runs online against the DSN given by ``app.migrate`` (through
``config.attributes["connection"]``) or by ``INVENTORY_DATABASE_URL``."""

from __future__ import annotations

import os

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

from app.models.tables import metadata

config = context.config
target_metadata = metadata


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)  # type: ignore[arg-type]
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    dsn = os.environ.get("INVENTORY_DATABASE_URL")
    if not dsn:
        raise SystemExit("set INVENTORY_DATABASE_URL (a libpq URI) to run the migrations")
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(dsn, target_session_attrs="read-write"),
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn)


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported; run against a database")
run_migrations_online()
