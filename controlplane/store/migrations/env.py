"""Alembic environment: runs on the connection the store hands over (see ``Database.migrate``).

No ini file and no URL here: ``controlplane.store.database.Database`` opens the connection (with
the SQLite pragmas or the PostgreSQL migration lock) and passes it in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from controlplane.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "run migrations through controlplane.store.database.Database.migrate(), "
            "which passes the connection"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
