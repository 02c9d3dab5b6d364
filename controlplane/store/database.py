"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed transaction survives a crash of
the process and of the machine) and a busy timeout. Its write transactions start with
``BEGIN IMMEDIATE``, so two writers queue on the busy timeout instead of failing when one of them
upgrades a read lock; read-only sessions (:meth:`Database.reader`) use a plain ``BEGIN``.

A long-running process (the control plane's :class:`~controlplane.runtime.Runtime`) moves
SQLite's WAL checkpoints into a thread of their own (:meth:`Database.start_background_checkpoints`):
by default SQLite checkpoints inside whichever commit grows the WAL past 1,000 pages, so one
commit in a few hundred (a webhook delivery, under load) pays tens of milliseconds for copying
the WAL back into the database file and syncing it.

SQLite has one write lock per database file, and a writer that finds it taken polls for it: the
busy handler sleeps 1, 2, 5, 10 ... up to 100 ms between tries, so a writer can wait up to 100 ms
longer than the transaction it waits for (a webhook delivery behind an evaluation cycle's
insert, say). Writers of one process therefore queue in Python first (:class:`WriteTurns`): a
waiting writer is woken the moment the one before it has committed, and SQLite's busy handler is
left to writers in other processes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from controlplane.core.config import ControlPlaneSettings

__all__ = ["MIGRATIONS_DIR", "Database", "WriteTurns", "alembic_config", "head_revision"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Execution option: this connection only reads (SQLite: deferred ``BEGIN``).
READ_ONLY = "controlplane_read_only"
#: Execution option: this transaction writes first (SQLite: deferred ``BEGIN``, the write lock
#: taken by its first write; see :meth:`Database.writer`).
WRITES_FIRST = "controlplane_writes_first"
#: Any 64-bit number distinct from the leader lock: serialises concurrent migrations.
MIGRATION_LOCK_KEY = 0x51_0C_0B_7F
#: Alembic keeps its migration context in module globals: one migration per process at a time.
_ALEMBIC_LOCK = threading.Lock()


class WriteTurns:
    """One writer of this process at a time on one SQLite database, woken in turn (see the
    module's docstring).

    A write transaction opened by :meth:`Database.writer` or :meth:`Database.write_connection`
    takes the turn when SQLite's write lock would be taken (at ``BEGIN IMMEDIATE``, or at the
    first statement of a deferred transaction) and gives it back after its commit or rollback.
    Re-entrant within one thread. A turn not given within ``timeout`` seconds is not waited for
    any longer: the writer goes on to SQLite, whose busy timeout then decides, as without turns.
    """

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._local = threading.local()
        self._waiting = 0
        self._count_lock = threading.Lock()

    @property
    def held(self) -> bool:
        """This thread has the turn."""
        return bool(getattr(self._local, "held", False))

    @property
    def waiting(self) -> int:
        """Writers of this process waiting for the turn now."""
        return self._waiting

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The span of one write transaction; the turn, if taken inside, is given back at its
        end."""
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self._local.gave_up = False
                if self.held:
                    self._local.held = False
                    self._lock.release()

    def try_take(self) -> bool:
        """Take the turn if it is free now, without waiting, inside :meth:`transaction` only:
        True if this thread has it (given back at the transaction's end). For a writer that must
        not block, the event loop's: it tries again later instead."""
        if self.held:
            return True
        if not getattr(self._local, "depth", 0):
            raise RuntimeError("try_take() outside of a write transaction")
        if not self._lock.acquire(blocking=False):
            return False
        self._local.held = True
        return True

    def take(self) -> None:
        """Wait for the turn, inside :meth:`transaction` only (a no-op outside of it, or when
        this thread has it)."""
        local = self._local
        if self.held or not getattr(local, "depth", 0) or getattr(local, "gave_up", False):
            return
        with self._count_lock:
            self._waiting += 1
        try:
            taken = self._lock.acquire(timeout=self.timeout)
        finally:
            with self._count_lock:
                self._waiting -= 1
        if taken:
            local.held = True
        else:
            local.gave_up = True  # for the rest of this transaction
            logger.warning(
                "no SQLite write turn within %.0f s; waiting on SQLite's busy timeout", self.timeout
            )


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int, turns: WriteTurns) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN (pysqlite would defer it otherwise).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        deferred = options.get(READ_ONLY, False) or options.get(WRITES_FIRST, False)
        if not deferred:
            turns.take()
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

    @event.listens_for(engine, "before_cursor_execute")
    def _on_statement(
        connection: Connection,
        _cursor: Any,
        statement: str,
        _params: Any,
        _context: Any,
        _many: bool,
    ) -> None:
        # A deferred write transaction (``WRITES_FIRST``) takes its turn at its first statement
        # after its ``BEGIN``, once SQLAlchemy has prepared that statement's parameters.
        if statement != "BEGIN" and connection.get_execution_options().get(WRITES_FIRST, False):
            turns.take()


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no Alembic migrations found")
    return head


class WalCheckpointer:
    """SQLite: a passive WAL checkpoint every ``interval`` seconds, in its own thread.

    ``PASSIVE`` never waits for readers or writers (it copies what it can; the next round does
    the rest), and the SQLite library does its I/O without Python's GIL held."""

    def __init__(self, engine: Engine, *, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def checkpoint(self) -> None:
        connection = self.engine.raw_connection()  # autocommit: no transaction around it
        try:
            cursor = connection.cursor()
            try:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                cursor.close()
        finally:
            connection.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.checkpoint()
            except Exception as exc:  # the next round tries again; commits never depend on it
                logger.warning("SQLite WAL checkpoint failed: %s", exc)


class Database:
    """One engine plus session factories; create it once per process and pass it down."""

    def __init__(self, engine: Engine, *, turns: WriteTurns | None = None) -> None:
        self.engine = engine
        #: SQLite: this process' queue of writers (None for PostgreSQL).
        self.turns = turns
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        self._checkpointer: WalCheckpointer | None = None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", self._on_sqlite_connect)

    def _on_sqlite_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if self._checkpointer is not None:
            cursor = dbapi_connection.cursor()
            try:  # commits no longer checkpoint: the checkpointer's thread does
                cursor.execute("PRAGMA wal_autocheckpoint = 0")
            finally:
                cursor.close()

    def start_background_checkpoints(self, *, interval: float = 1.0) -> None:
        """SQLite file databases: checkpoint the WAL in a thread of this process instead of
        inside commits, until :meth:`dispose` (nothing for PostgreSQL or an in-memory
        database)."""
        if self._checkpointer is not None or not self.is_sqlite:
            return
        database = self.engine.url.database
        if not database or database == ":memory:":
            return
        self._checkpointer = WalCheckpointer(self.engine, interval=interval)
        # Pooled connections are opened again, without checkpointing on commit.
        self.engine.dispose()
        self._checkpointer.start()

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings) -> Database:
        return cls.from_url(
            settings.store.sqlalchemy_url,
            pool_size=settings.store.database_pool_size,
            pool_timeout=settings.store.database_pool_timeout_seconds,
            sqlite_busy_timeout=settings.store.sqlite_busy_timeout_seconds,
            idle_in_transaction_timeout=settings.leader.leader_lease_ttl_seconds,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        sqlite_busy_timeout: float = 30.0,
        idle_in_transaction_timeout: float = 10.0,
    ) -> Database:
        """``idle_in_transaction_timeout`` (PostgreSQL): the server ends a session that sits
        in an open transaction this long, so a frozen process cannot hold row locks (the
        leader lease's, say) for longer than a lease lives."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            connect_args = {"timeout": sqlite_busy_timeout, "check_same_thread": False}
            if not database or database == ":memory:":
                # One shared connection, so every thread sees the same in-memory database.
                engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
            else:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(
                    url, connect_args=connect_args, pool_size=pool_size, pool_timeout=pool_timeout
                )
            turns = WriteTurns(timeout=sqlite_busy_timeout)
            _configure_sqlite(engine, busy_timeout_ms=int(sqlite_busy_timeout * 1000), turns=turns)
            return cls(engine, turns=turns)
        else:
            idle_ms = max(int(idle_in_transaction_timeout * 1000), 1000)
            engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=pool_timeout,
                pool_pre_ping=True,
                connect_args={"options": f"-c idle_in_transaction_session_timeout={idle_ms}"},
            )
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def writer(self, *, writes_first: bool = False) -> Iterator[Session]:
        """A session in one transaction, committed at the end (rolled back on error).

        ``writes_first``: the transaction's first statement writes, and has much to prepare
        (a cycle's evaluations: a thousand rows of JSON). SQLite then takes its one write lock
        when that statement runs, after SQLAlchemy has processed its parameters, instead of at
        ``BEGIN``: other writers (the webhook's) wait for the insert, not for its preparation.
        (A transaction that reads first must not use it: SQLite cannot wait for the lock when a
        reader upgrades.)"""
        with self._turn(), self._sessions() as session, session.begin():
            if writes_first:
                session.connection(execution_options={WRITES_FIRST: True})
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in one write transaction, committed at the end (rolled back on
        error): :meth:`writer` without the ORM session, for hot paths that run Core statements
        only (the webhook's group commits)."""
        with self._turn(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def write_connection_if_free(self) -> Iterator[Connection | None]:
        """:meth:`write_connection` if this process' write turn is free now, else ``None``
        (nothing opened; try again later): for the event loop's writes, which must not wait for
        another thread's transaction. PostgreSQL has no turns: always a connection."""
        with self._turn():
            if self.turns is not None and not self.turns.try_take():
                yield None
                return
            with self.engine.begin() as connection:
                yield connection

    def _turn(self) -> AbstractContextManager[None]:
        return nullcontext() if self.turns is None else self.turns.transaction()

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session (never committed; SQLite takes no write lock)."""
        with self._sessions() as session:
            session.connection(execution_options={READ_ONLY: True})
            try:
                yield session
            finally:
                session.rollback()

    def ping(self) -> None:
        """Run ``SELECT 1``; raises the driver's error when the database cannot be reached."""
        with self.reader() as session:
            session.execute(text("SELECT 1"))

    # -- migrations ----------------------------------------------------------------------------
    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (idempotent; concurrent replicas take turns)."""
        self._run_alembic(lambda config: command.upgrade(config, revision))

    def downgrade(self, revision: str) -> None:
        self._run_alembic(lambda config: command.downgrade(config, revision))

    def current_revision(self) -> str | None:
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def _run_alembic(self, run: Any) -> None:
        config = alembic_config()
        with _ALEMBIC_LOCK, self.engine.connect() as connection:
            if self.dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                connection.commit()
            try:
                config.attributes["connection"] = connection
                run(config)
                connection.commit()
            finally:
                if self.dialect == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                    connection.commit()

    def dispose(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        self.engine.dispose()
