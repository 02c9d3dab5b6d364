"""Apply the Alembic migrations: ``python -m app.migrate [--database-url DSN]``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import create_engine, pool

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


def ensure_database(dsn: str) -> bool:
    """Create the database named by ``dsn`` if it does not exist yet; True if it was created."""
    params = conninfo_to_dict(dsn)
    name = str(params.get("dbname") or "")
    if not name:
        raise ValueError("the DSN names no database")
    admin = make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True, target_session_attrs="read-write") as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def upgrade(dsn: str, *, revision: str = "head", create: bool = False) -> None:
    """Bring the database named by ``dsn`` (a libpq URI, multi-host allowed) to ``revision``."""
    if create:
        ensure_database(dsn)

    def creator() -> psycopg.Connection[Any]:
        return psycopg.connect(dsn, target_session_attrs="read-write")

    engine = create_engine("postgresql+psycopg://", creator=creator, poolclass=pool.NullPool)
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ALEMBIC_INI.parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("INVENTORY_DATABASE_URL"),
        help="libpq URI of the primary (default: $INVENTORY_DATABASE_URL)",
    )
    parser.add_argument("--revision", default="head")
    parser.add_argument(
        "--create-database", action="store_true", help="create the database if it is missing"
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set INVENTORY_DATABASE_URL")
    upgrade(args.database_url, revision=args.revision, create=args.create_database)


if __name__ == "__main__":
    main()
