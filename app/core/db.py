"""PostgreSQL access: the write pool (primary), the read pool (replica) and the read router.

The API talks to PostgreSQL through psycopg 3's asyncio pool; the workers and the migrations use
SQLAlchemy 2 on psycopg 3 (blocking). The DSNs are libpq URIs passed verbatim to psycopg, so a
multi-host URI (``postgresql://user@h1:5432,h2:5433/db``) works: psycopg tries the hosts in order.
Write connections always add ``target_session_attrs=read-write``, and both kinds of pool check a
connection before lending it, so after a failover a promoted replica is found again without a
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from opentelemetry.instrumentation.utils import suppress_instrumentation
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, create_engine
from sqlalchemy import exc as sa_exc

from app.core.config import Settings

log = logging.getLogger(__name__)

#: Errors that mean "the database is not reachable right now" (as opposed to a bad request).
DB_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    psycopg.OperationalError,
    OSError,
    TimeoutError,
)


def _conn_kwargs(*, settings: Settings, write: bool, application_name: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "connect_timeout": settings.db_connect_timeout_seconds,
        "application_name": application_name,
    }
    if write:
        kwargs["target_session_attrs"] = "read-write"
    return kwargs


class Conn:
    """One pooled connection with the few calls the services need (rows are named tuples)."""

    def __init__(self, raw: psycopg.AsyncConnection[Any]) -> None:
        self.raw = raw

    async def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        cursor = await self.raw.execute(sql, params)
        return await cursor.fetchall()

    async def one_or_none(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        cursor = await self.raw.execute(sql, params)
        return await cursor.fetchone()

    async def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        row = await self.one_or_none(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        cursor = await self.raw.execute(sql, params)
        return cursor.rowcount


async def _check_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's liveness check of a connection before lending it (not traced: it is noise)."""
    with suppress_instrumentation():
        await AsyncConnectionPool.check_connection(conn)


class Database:
    """An asyncio psycopg pool for one DSN.

    ``check=check_connection`` makes the pool test a connection before lending it; a dead one is
    replaced by a new connection, which for the write DSN goes through the host list with
    ``target_session_attrs=read-write`` — that is how the API finds a promoted replica.
    Connections are in autocommit mode; :meth:`begin` wraps a block in one transaction.
    """

    def __init__(
        self,
        *,
        name: str,
        settings: Settings,
        dsn: str,
        write: bool,
        application_name: str,
        configure: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        kwargs = _conn_kwargs(settings=settings, write=write, application_name=application_name)
        kwargs["autocommit"] = True
        kwargs["options"] = f"-c statement_timeout={settings.db_statement_timeout_ms}"

        async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
            conn.row_factory = namedtuple_row
            if configure is not None:
                await configure(conn)

        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            kwargs=kwargs,
            min_size=min(2, settings.db_pool_size),
            max_size=settings.db_pool_size + settings.db_max_overflow,
            timeout=settings.db_pool_timeout_seconds,
            check=_check_connection,
            configure=_configure,
            max_idle=300,
            max_lifetime=1800,
            reconnect_timeout=24 * 3600,
            name=f"inventory-{name}",
            open=False,
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close(timeout=5)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Conn]:
        async with self.pool.connection() as raw:
            yield Conn(raw)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Conn]:
        async with self.pool.connection() as raw, raw.transaction():
            yield Conn(raw)

    def stats(self) -> dict[str, int]:
        return self.pool.get_stats()


def make_sync_engine(
    *,
    settings: Settings,
    dsn: str,
    write: bool,
    application_name: str,
    pool_size: int = 2,
    configure: Callable[[psycopg.Connection[Any]], object] | None = None,
) -> Engine:
    """A blocking SQLAlchemy engine (workers) with the same connection rules; ``pool_pre_ping``
    discards a connection to a dead or demoted primary before it is used."""
    kwargs = _conn_kwargs(settings=settings, write=write, application_name=application_name)

    def creator() -> psycopg.Connection[Any]:
        conn = psycopg.connect(dsn, **kwargs)
        if configure is not None:
            configure(conn)
        return conn

    return create_engine(
        "postgresql+psycopg://",
        creator=creator,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=2,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=1800,
    )


_LAG_SQL = """
    SELECT pg_is_in_recovery() AS standby,
           COALESCE((SELECT status = 'streaming' FROM pg_stat_wal_receiver LIMIT 1), false)
               AS streaming,
           CASE
             WHEN NOT pg_is_in_recovery() THEN 0.0
             WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
             ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9)
           END::float8 AS lag
"""


@dataclass(frozen=True)
class ReplicaState:
    """What the last probe of the read DSN found."""

    reachable: bool
    standby: bool
    streaming: bool
    lag_seconds: float
    checked_at: float  # time.monotonic()


class ReadRouter:
    """Chooses the engine for read-only queries under the bounded-staleness rule.

    A read goes to the replica only while the last probe (at most three probe intervals old)
    found it reachable and either promoted (it is a primary now) or streaming from its primary
    with a replay lag of at most ``replica_max_lag_seconds``. Otherwise it goes to the primary.
    """

    def __init__(self, *, settings: Settings, primary: Database, replica: Database | None):
        self.settings = settings
        self.primary = primary
        self.replica = replica
        self.state: ReplicaState | None = None
        self._task: asyncio.Task[None] | None = None

    def replica_fresh(self, now: float | None = None) -> bool:
        state = self.state
        if self.replica is None or state is None or not state.reachable:
            return False
        now = time.monotonic() if now is None else now
        if now - state.checked_at > 3 * self.settings.replica_check_interval_seconds:
            return False
        if not state.standby:
            return True
        return state.streaming and state.lag_seconds <= self.settings.replica_max_lag_seconds

    def engine(self) -> tuple[Database, str]:
        """The engine to read from and its name ("replica" or "primary")."""
        if self.replica is not None and self.replica_fresh():
            return self.replica, "replica"
        return self.primary, "primary"

    async def probe(self) -> ReplicaState:
        if self.replica is None:
            raise RuntimeError("no replica configured")
        try:
            with suppress_instrumentation():
                async with self.replica.connect() as conn:
                    row = await conn.one_or_none(_LAG_SQL)
            state = ReplicaState(
                reachable=True,
                standby=bool(row.standby),
                streaming=bool(row.streaming),
                lag_seconds=float(row.lag),
                checked_at=time.monotonic(),
            )
        except (psycopg.Error, OSError) as exc:
            log.warning("replica probe failed: %s", exc)
            state = ReplicaState(
                reachable=False,
                standby=True,
                streaming=False,
                lag_seconds=float("inf"),
                checked_at=time.monotonic(),
            )
        self.state = state
        return state

    async def _run(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.settings.replica_check_interval_seconds)

    def start(self) -> None:
        if self.replica is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="replica-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
