"""Small SQL helpers shared by the repositories (dialect-specific INSERT ... ON CONFLICT)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

Executor = Session | Connection


def dialect_name(executor: Executor) -> str:
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    return bind.dialect.name


def insert_for(executor: Executor, table: Any) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` construct of the executor's dialect (both offer ``on_conflict_do_nothing``)."""
    return insert_for_dialect(dialect_name(executor), table)


def insert_for_dialect(name: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` construct of the dialect ``name`` (``postgresql``, else SQLite's)."""
    if name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
