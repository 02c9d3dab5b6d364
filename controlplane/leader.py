"""Leader election: exactly one replica evaluates actions, with a fencing token.

Every replica serves the API; only the leader may act. Becoming leader increments the fencing
token stored in the ``leader_lease`` row of the same database, so each takeover carries a larger
token than any before it. Writes made on behalf of the leader (the audit log) check the token in
the same transaction (:func:`controlplane.store.leases.require_current_token`), so a replica that
lost the leadership without noticing yet cannot act.

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated
  connection. The lock lives as long as that database session: a replica that dies or loses its
  connection loses the lock at once (kill: the socket closes; network loss: TCP keepalives and
  ``tcp_user_timeout`` end the session within seconds), and a follower polling every
  ``acquire_interval`` takes over. The leader checks its connection and its token every
  ``check_interval``; an error or a newer token makes it step down.
* SQLite (embedded, one machine): an exclusive ``flock`` on ``<database>.leader`` next to the
  database file plays the lock (the kernel drops it when the process dies); an in-memory database
  is always its process's leader.
* Disabled (``CONTROLPLANE_LEADER_ELECTION=false``): never leader, API only.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from controlplane.core.config import ControlPlaneSettings
from controlplane.store.database import Database
from controlplane.store.leases import read_lease, renew_lease, take_over_lease

__all__ = [
    "FileLockElector",
    "LeaderStatus",
    "Leadership",
    "NoLeadership",
    "PostgresLeaderElector",
    "leadership_for",
]

logger = logging.getLogger(__name__)

Mode = Literal["postgresql-advisory-lock", "sqlite-file-lock", "disabled"]
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaderStatus:
    """What a replica knows about the leadership."""

    replica_id: str
    mode: Mode
    is_leader: bool
    #: This replica's token while it leads, else None.
    fencing_token: int | None = None
    #: When this replica became leader.
    since: datetime | None = None
    #: The lease as last read from the database (any replica's view of the current leader).
    lease_holder: str | None = None
    lease_token: int | None = None
    last_error: str | None = None
    #: When this replica last confirmed its lock and token (while it leads).
    confirmed_at: datetime | None = None

    def leads(self, *, now: datetime, max_age: float) -> bool:
        """Leader, with a confirmation at most ``max_age`` seconds old: the gate an action
        checks before it runs (its writes then carry ``fencing_token``)."""
        return (
            self.is_leader
            and self.confirmed_at is not None
            and (now - self.confirmed_at).total_seconds() <= max_age
        )


Listener = Callable[[LeaderStatus], None]


class Leadership(Protocol):
    """What the API and the action engine need from leader election."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def status(self) -> LeaderStatus: ...
    def add_listener(self, listener: Listener) -> None: ...


class NoLeadership:
    """Leader election disabled: this replica never leads."""

    def __init__(self, *, replica_id: str) -> None:
        self._status = LeaderStatus(replica_id=replica_id, mode="disabled", is_leader=False)

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def status(self) -> LeaderStatus:
        return self._status

    def add_listener(self, listener: Listener) -> None:
        return None


class _PollingElector(ABC):
    """A background thread that tries to become leader, then keeps checking that it still is."""

    mode: Mode

    def __init__(
        self,
        *,
        database: Database,
        name: str,
        replica_id: str,
        check_interval: float,
        acquire_interval: float,
        clock: Clock = _utcnow,
    ) -> None:
        self.database = database
        self.name = name
        self.replica_id = replica_id
        self.check_interval = check_interval
        self.acquire_interval = acquire_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._status = LeaderStatus(replica_id=replica_id, mode=self.mode, is_leader=False)
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what each lock defines ------------------------------------------------------------------
    @abstractmethod
    def _try_lock(self) -> bool:
        """Try to take the lock without waiting."""

    @abstractmethod
    def _take_over(self) -> int:
        """Increment the fencing token (the lock is held); returns the new token."""

    @abstractmethod
    def _confirm(self, token: int) -> bool:
        """Whether the lock is still held and ``token`` still current (raise on errors)."""

    @abstractmethod
    def _unlock(self) -> None:
        """Release the lock (must not raise)."""

    # -- public API ------------------------------------------------------------------------------
    def status(self) -> LeaderStatus:
        with self._lock:
            return self._status

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def step(self) -> LeaderStatus:
        """One round: try to become leader, or check that this replica still is."""
        current = self.status()
        try:
            if current.is_leader and current.fencing_token is not None:
                if self._confirm(current.fencing_token):
                    self._set(replace(self.status(), confirmed_at=self.clock()))
                else:
                    self._step_down("the lock or the fencing token was lost")
            elif self._try_lock():
                try:
                    token = self._take_over()
                except (SQLAlchemyError, OSError):
                    self._unlock()
                    raise
                now = self.clock()
                self._set(
                    replace(
                        current,
                        is_leader=True,
                        fencing_token=token,
                        since=now,
                        confirmed_at=now,
                        lease_holder=self.replica_id,
                        lease_token=token,
                        last_error=None,
                    )
                )
                logger.info("%s is now leader with fencing token %d", self.replica_id, token)
            else:
                self._refresh_view()
        except (SQLAlchemyError, OSError) as exc:
            if self.status().is_leader:
                self._step_down(f"leadership check failed: {exc}")
            else:
                self._unlock()
            self._set(replace(self.status(), last_error=str(exc).splitlines()[0]))
        return self.status()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"leader-election-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop electing; a leader releases its lock (a follower then takes over)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.check_interval + self.acquire_interval + 10)
            self._thread = None
        if self.status().is_leader:
            self._step_down("stopping", expected=True)
        self._unlock()

    # -- internals -------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            status = self.step()
            interval = self.check_interval if status.is_leader else self.acquire_interval
            self._stop.wait(interval)

    def _refresh_view(self) -> None:
        with self.database.reader() as session:
            lease = read_lease(session, name=self.name)
        self._set(
            replace(
                self.status(),
                lease_holder=lease.holder if lease else None,
                lease_token=lease.fencing_token if lease else None,
                last_error=None,
            )
        )

    def _step_down(self, reason: str, *, expected: bool = False) -> None:
        logger.log(
            logging.INFO if expected else logging.WARNING,
            "%s steps down: %s",
            self.replica_id,
            reason,
        )
        self._unlock()
        self._set(
            replace(
                self.status(), is_leader=False, fencing_token=None, since=None, confirmed_at=None
            )
        )

    def _set(self, status: LeaderStatus) -> None:
        with self._lock:
            previous = self._status
            self._status = status
        if previous.is_leader != status.is_leader:
            for listener in list(self._listeners):
                try:
                    listener(status)
                except Exception:  # a listener's bug must not stop the election
                    logger.exception("leadership listener %r failed", listener)


class PostgresLeaderElector(_PollingElector):
    """Session-level advisory lock on a dedicated connection + fencing counter row."""

    mode: Mode = "postgresql-advisory-lock"

    def __init__(
        self,
        *,
        database: Database,
        name: str,
        lock_key: int,
        replica_id: str,
        check_interval: float = 2.0,
        acquire_interval: float = 2.0,
        query_timeout: float = 2.0,
        clock: Clock = _utcnow,
    ) -> None:
        super().__init__(
            database=database,
            name=name,
            replica_id=replica_id,
            check_interval=check_interval,
            acquire_interval=acquire_interval,
            clock=clock,
        )
        self.lock_key = lock_key
        self.query_timeout = query_timeout
        self._engine = self._lock_engine(
            database.engine, query_timeout, application_name=f"controlplane-leader:{replica_id}"
        )
        self._connection: Connection | None = None

    @staticmethod
    def _lock_engine(engine: Engine, query_timeout: float, *, application_name: str) -> Engine:
        timeout_ms = max(int(query_timeout * 1000), 100)
        # Server side: end the session (and the lock) soon after the client vanishes.
        options = (
            f"-c statement_timeout={timeout_ms} -c tcp_keepalives_idle=5 "
            "-c tcp_keepalives_interval=2 -c tcp_keepalives_count=2"
        )
        return create_engine(
            engine.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "connect_timeout": max(int(query_timeout), 1),
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 2,
                "tcp_user_timeout": max(timeout_ms * 2, 1000),
                "options": options,
                "application_name": application_name[:63],
            },
        )

    def _conn(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def _try_lock(self) -> bool:
        acquired = (
            self._conn()
            .execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.lock_key})
            .scalar_one()
        )
        return bool(acquired)

    def _take_over(self) -> int:
        return take_over_lease(
            self._conn(), name=self.name, holder=self.replica_id, at=self.clock()
        )

    def _confirm(self, token: int) -> bool:
        # A live session still holds its session-level lock; the row says whether the token
        # is still the current one.
        return renew_lease(self._conn(), name=self.name, token=token, at=self.clock())

    def _unlock(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.invalidate()  # closes the socket: the server drops the session's locks
            connection.close()
        except SQLAlchemyError:  # already broken: the server side is gone or going
            logger.debug("closing the leader-election connection failed", exc_info=True)

    def stop(self) -> None:
        super().stop()
        self._engine.dispose()


class FileLockElector(_PollingElector):
    """SQLite: an exclusive ``flock`` next to the database file; in memory: always leader."""

    mode: Mode = "sqlite-file-lock"

    def __init__(
        self,
        *,
        database: Database,
        name: str,
        replica_id: str,
        check_interval: float = 2.0,
        acquire_interval: float = 2.0,
        clock: Clock = _utcnow,
    ) -> None:
        super().__init__(
            database=database,
            name=name,
            replica_id=replica_id,
            check_interval=check_interval,
            acquire_interval=acquire_interval,
            clock=clock,
        )
        path = make_url(str(database.engine.url)).database
        in_memory = not path or path == ":memory:"
        self.lock_path = None if in_memory else Path(f"{path}.{name}.leader")
        self._fd: int | None = None

    def _try_lock(self) -> bool:
        if self.lock_path is None:
            return True
        if self._fd is None:
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _take_over(self) -> int:
        with self.database.writer() as session:
            return take_over_lease(session, name=self.name, holder=self.replica_id, at=self.clock())

    def _confirm(self, token: int) -> bool:
        return True  # a held flock cannot be taken away while the process lives

    def _unlock(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the flock


def leadership_for(*, settings: ControlPlaneSettings, database: Database) -> Leadership:
    """The leader election that fits the configured database."""
    if not settings.leader.leader_election:
        return NoLeadership(replica_id=settings.leader.replica_id)
    if database.dialect == "postgresql":
        return PostgresLeaderElector(
            database=database,
            name=settings.leader.leader_name,
            lock_key=settings.leader.leader_lock_key,
            replica_id=settings.leader.replica_id,
            check_interval=settings.leader.leader_check_interval_seconds,
            acquire_interval=settings.leader.leader_acquire_interval_seconds,
            query_timeout=settings.leader.leader_query_timeout_seconds,
        )
    return FileLockElector(
        database=database,
        name=settings.leader.leader_name,
        replica_id=settings.leader.replica_id,
        check_interval=settings.leader.leader_check_interval_seconds,
        acquire_interval=settings.leader.leader_acquire_interval_seconds,
    )
