"""Leader election: exactly one replica acts, under a lease with an expiry and a fencing token.

Every replica serves the API; only the leader may act. Leadership is a lease row in the store
(``leader_lease``, :mod:`controlplane.store.leases`), as Kubernetes Leases and Patroni's leader
key are:

* a follower takes the lease when nobody holds it, when it has expired, or when it can see that
  its holder died (below); taking it increments the fencing token, so each takeover carries a
  larger token than any before it;
* the leader renews it every ``check_interval``, extending its expiry by ``ttl`` from the
  database's clock. A renewal is refused once another replica has taken over or the lease has
  lapsed, and the leader steps down;
* the leader counts its own leadership on its monotonic clock: it leads until ``ttl`` after it
  *sent* its last successful renewal, which is never later than the expiry the database
  recorded. A leader that was frozen (SIGSTOP, a stalled VM) or cut off from the store
  therefore stops leading on its own before any follower can take over, and when it thaws, its
  status says "not leader" before it renews anything. Store errors do not end a leadership at
  once: the leader keeps retrying until that deadline (a store restart need not move the lease);
* writes on behalf of the leader (the audit log, the claim of an action's execution) check in
  their own transaction that the token is current and its lease unexpired
  (:func:`controlplane.store.leases.require_current_token`), so a replica that lost the
  leadership without noticing yet cannot record, let alone run, an action.

A dead holder is seen before its lease expires where the store allows it:

* PostgreSQL: the leader holds a session-level advisory lock whose key is made of
  ``lock_key`` and its token, on its own election connection. A killed replica's session ends
  with its socket (a lost network through TCP keepalives and ``tcp_user_timeout``), the lock is
  free, and a follower that can take it takes over at once instead of after the expiry. A frozen
  replica's session lives on, so for it the expiry decides.
* SQLite (one machine): the lease names the holder's process (host, pid and start time); a
  follower on the same host that finds the process gone takes over at once.

Disabled (``CONTROLPLANE_LEADER_ELECTION=false``): never leader, API only.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from controlplane.core.config import ControlPlaneSettings
from controlplane.core.processes import proc_stat
from controlplane.store._sql import Executor
from controlplane.store.database import Database
from controlplane.store.leases import (
    LeaseInfo,
    ensure_lease,
    read_lease,
    release_lease,
    renew_lease,
    try_take_lease,
)

__all__ = [
    "LeaderStatus",
    "Leadership",
    "LeaseElector",
    "NoLeadership",
    "PostgresLease",
    "SQLiteLease",
    "leadership_for",
]

logger = logging.getLogger(__name__)

Mode = Literal["postgresql-lease", "sqlite-lease", "disabled"]
Clock = Callable[[], datetime]
Monotonic = Callable[[], float]
T = TypeVar("T")


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
    #: When this replica last renewed its lease (while it leads).
    confirmed_at: datetime | None = None
    #: The lease's expiry as the database recorded it at the last renewal (while it leads).
    lease_expires_at: datetime | None = None
    #: The end of this replica's leadership on its monotonic clock (``time.monotonic()``):
    #: ``ttl`` after it sent its last successful renewal. None when it does not lead.
    valid_until: float | None = None

    def leads(self, *, now: datetime, max_age: float) -> bool:
        """Leader, with a lease still valid on this replica's monotonic clock and renewed at
        most ``max_age`` seconds ago: the gate an action checks before it runs (its writes
        then carry ``fencing_token``)."""
        return (
            self.is_leader
            and self.confirmed_at is not None
            and (now - self.confirmed_at).total_seconds() <= max_age
            and (self.valid_until is None or time.monotonic() < self.valid_until)
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


# -- how each store runs the lease statements and sees a dead holder ---------------------------
class LeaseStore(Protocol):
    """The lease statements on one kind of store, and its way of telling that a holder died."""

    mode: Mode

    def run(self, work: Callable[[Executor], T]) -> T:
        """Run ``work`` in one transaction (raise the driver's error on failure)."""

    def session(self) -> str | None:
        """How followers can check this replica is alive (stored with the lease)."""

    def holder_gone(self, lease: LeaseInfo) -> bool:
        """Whether the lease's holder is certainly dead (False when it cannot be told)."""

    def before_take(self, token: int) -> bool:
        """About to take the lease with ``token``: make this replica's liveness visible under
        it (False: not now)."""

    def after_take(self, token: int, *, taken: bool) -> None:
        """The takeover with ``token`` succeeded or not."""

    def hold(self, token: int) -> None:
        """Leading with ``token``: keep this replica's liveness visible (after a reconnect)."""

    def reset(self) -> None:
        """Forget the connection after an error, or on stepping down (must not raise)."""

    def close(self) -> None:
        """Release everything (must not raise)."""


class LeaseElector:
    """A background thread that takes the lease when it is free, then renews it."""

    def __init__(
        self,
        *,
        store: LeaseStore,
        name: str,
        replica_id: str,
        ttl: float = 10.0,
        check_interval: float = 2.0,
        acquire_interval: float = 2.0,
        clock: Clock = _utcnow,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.store = store
        self.mode = store.mode
        self.name = name
        self.replica_id = replica_id
        self.ttl = ttl
        self.check_interval = check_interval
        self.acquire_interval = acquire_interval
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._status = LeaderStatus(replica_id=replica_id, mode=self.mode, is_leader=False)
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public API ------------------------------------------------------------------------------
    def status(self) -> LeaderStatus:
        """The current view. A leadership whose lease ran out on this replica's clock reads as
        over at once (a replica thawing from a freeze), before the election thread notices."""
        with self._lock:
            status = self._status
        if status.is_leader and not self._valid(status):
            return _follower(status)
        return status

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def step(self) -> LeaderStatus:
        """One round: renew the lease while leading, else try to take it."""
        current = self._raw()
        try:
            if current.is_leader and self._valid(current):
                self._renew(current)
                return self.status()
            if current.is_leader:
                self._step_down("the lease ran out before it could be renewed")
            self._try_take()
        except (SQLAlchemyError, OSError) as exc:
            # A leader keeps its lease until its deadline and retries; status() ends it then.
            self.store.reset()
            self._set(replace(self._raw(), last_error=str(exc).splitlines()[0]))
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
        """Stop electing; a leader releases its lease (a follower then takes over at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.check_interval + self.acquire_interval + 10)
            self._thread = None
        current = self._raw()
        if current.is_leader and current.fencing_token is not None:
            token = current.fencing_token
            try:
                self.store.run(
                    lambda ex: release_lease(ex, name=self.name, token=token, at=self.clock())
                )
            except (SQLAlchemyError, OSError):  # the lease lapses on its own
                logger.warning("could not release the leader lease", exc_info=True)
            self._step_down("stopping", expected=True)
        self.store.close()

    # -- internals -------------------------------------------------------------------------------
    def _valid(self, status: LeaderStatus) -> bool:
        return status.valid_until is not None and self.monotonic() < status.valid_until

    def _raw(self) -> LeaderStatus:
        with self._lock:
            return self._status

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self.step()
            interval = self.check_interval if status.is_leader else self.acquire_interval
            self._stop.wait(interval)

    def _renew(self, current: LeaderStatus) -> None:
        token = current.fencing_token
        assert token is not None
        sent = self.monotonic()
        self.store.hold(token)
        session = self.store.session()
        expires = self.store.run(
            lambda ex: renew_lease(
                ex, name=self.name, token=token, at=self.clock(), ttl=self.ttl, session=session
            )
        )
        if expires is None:
            self._step_down("another replica took the lease over, or it lapsed")
            return
        self._set(
            replace(
                current,
                confirmed_at=self.clock(),
                lease_expires_at=expires,
                valid_until=sent + self.ttl,
                last_error=None,
            )
        )

    def _read(self, ex: Executor) -> LeaseInfo:
        ensure_lease(ex, name=self.name)
        lease = read_lease(ex, name=self.name)
        assert lease is not None
        return lease

    def _try_take(self) -> None:
        lease = self.store.run(self._read)
        gone = None
        if lease.holder is not None and lease.holder_session and self.store.holder_gone(lease):
            gone = lease.holder_session
        token = lease.fencing_token + 1
        if not self.store.before_take(token):
            self._follow(lease)
            return
        sent = self.monotonic()
        session = self.store.session()
        grant = None
        try:
            grant = self.store.run(
                lambda ex: try_take_lease(
                    ex,
                    name=self.name,
                    holder=self.replica_id,
                    at=self.clock(),
                    ttl=self.ttl,
                    seen_token=lease.fencing_token,
                    gone_session=gone,
                    session=session,
                )
            )
        finally:
            self.store.after_take(token, taken=grant is not None)
        if grant is None:
            self._follow(lease)
            return
        taken = grant.token
        now = self.clock()
        self._set(
            replace(
                self._raw(),
                is_leader=True,
                fencing_token=taken,
                since=now,
                confirmed_at=now,
                lease_holder=self.replica_id,
                lease_token=taken,
                lease_expires_at=grant.expires_at,
                valid_until=sent + self.ttl,
                last_error=None,
            )
        )
        why = f"{lease.holder}'s session is gone" if gone else "the lease was free or expired"
        logger.info("%s is now leader with fencing token %d (%s)", self.replica_id, taken, why)

    def _follow(self, lease: LeaseInfo) -> None:
        self._set(
            replace(
                self._raw(),
                lease_holder=lease.holder,
                lease_token=lease.fencing_token,
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
        self.store.reset()
        self._set(_follower(self._raw()))

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


def _follower(status: LeaderStatus) -> LeaderStatus:
    return replace(
        status,
        is_leader=False,
        fencing_token=None,
        since=None,
        confirmed_at=None,
        lease_expires_at=None,
        valid_until=None,
    )


class PostgresLease:
    """The lease statements on a dedicated autocommit connection; the leader's liveness is a
    session-level advisory lock keyed by ``lock_key`` and its fencing token."""

    mode: Mode = "postgresql-lease"

    def __init__(
        self, *, database: Database, lock_key: int, replica_id: str, query_timeout: float = 2.0
    ) -> None:
        self.lock_key = lock_key
        # Two 32-bit keys (the two-argument advisory locks live apart from the one-argument
        # ones, such as the migration lock).
        self._class_key = (lock_key ^ (lock_key >> 32)) & 0x7FFF_FFFF
        self._engine = self._lease_engine(
            database.engine, query_timeout, application_name=f"controlplane-leader:{replica_id}"
        )
        self._connection: Connection | None = None
        self._backend_pid: int | None = None
        self._held: int | None = None

    @staticmethod
    def _lease_engine(engine: Engine, query_timeout: float, *, application_name: str) -> Engine:
        timeout_ms = max(int(query_timeout * 1000), 100)
        # Server side: no statement waits long (a takeover queued behind a frozen writer's lock
        # is tried again next round), and the session ends soon after the client vanishes.
        options = (
            f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} "
            "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=2"
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
            connection = self._engine.connect()
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            self._backend_pid = int(pid)
            self._connection = connection
            self._held = None
        return self._connection

    def _key(self, token: int) -> dict[str, int]:
        return {"a": self._class_key, "b": token & 0x7FFF_FFFF}

    def _try_lock(self, token: int) -> bool:
        return bool(
            self._conn()
            .execute(text("SELECT pg_try_advisory_lock(:a, :b)"), self._key(token))
            .scalar_one()
        )

    def _unlock(self, token: int) -> None:
        self._conn().execute(text("SELECT pg_advisory_unlock(:a, :b)"), self._key(token))

    def run(self, work: Callable[[Executor], T]) -> T:
        return work(self._conn())

    def session(self) -> str | None:
        return None if self._held is None else f"pg-backend:{self._backend_pid}"

    def holder_gone(self, lease: LeaseInfo) -> bool:
        if not (lease.holder_session or "").startswith("pg-backend:"):
            return False
        if not self._try_lock(lease.fencing_token):
            return False  # its session holds the lock: alive (or frozen)
        self._unlock(lease.fencing_token)
        return True

    def before_take(self, token: int) -> bool:
        # Locked before the lease names us, so no follower ever sees us leading without it.
        if not self._try_lock(token):
            return False
        self._held = token
        return True

    def after_take(self, token: int, *, taken: bool) -> None:
        if not taken and self._held == token:
            self._held = None
            try:
                self._unlock(token)
            except SQLAlchemyError:
                self.reset()

    def hold(self, token: int) -> None:
        if self._held != token and self._try_lock(token):
            self._held = token

    def reset(self) -> None:
        connection, self._connection = self._connection, None
        self._held = None
        if connection is None:
            return
        try:
            connection.invalidate()  # closes the socket: the server drops the session's locks
            connection.close()
        except SQLAlchemyError:  # already broken: the server side is gone or going
            logger.debug("closing the leader-election connection failed", exc_info=True)

    def close(self) -> None:
        self.reset()
        self._engine.dispose()


def _process_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot), None when it is gone."""
    fields = proc_stat(pid)
    if fields is None or len(fields) < 20 or fields[0] == "Z":
        return None
    return fields[19]


class SQLiteLease:
    """The lease statements in the store's own write transactions; the holder is a process on
    this machine (an embedded store has no other), named by host, pid and start time."""

    mode: Mode = "sqlite-lease"

    def __init__(self, *, database: Database) -> None:
        self.database = database
        self._host = socket.gethostname()
        self._session = f"process:{self._host}:{os.getpid()}:{_process_start(os.getpid())}"

    def run(self, work: Callable[[Executor], T]) -> T:
        with self.database.writer() as session:
            return work(session)

    def session(self) -> str | None:
        return self._session

    def holder_gone(self, lease: LeaseInfo) -> bool:
        parts = (lease.holder_session or "").split(":")
        if len(parts) != 4 or parts[0] != "process" or parts[1] != self._host:
            return False
        if not parts[2].isdigit() or parts[3] == "None":
            return False
        return _process_start(int(parts[2])) != parts[3]

    def before_take(self, token: int) -> bool:
        return True

    def after_take(self, token: int, *, taken: bool) -> None:
        return None

    def hold(self, token: int) -> None:
        return None

    def reset(self) -> None:
        return None

    def close(self) -> None:
        return None


def leadership_for(*, settings: ControlPlaneSettings, database: Database) -> Leadership:
    """The leader election that fits the configured database."""
    leader = settings.leader
    if not leader.leader_election:
        return NoLeadership(replica_id=leader.replica_id)
    store: LeaseStore
    if database.dialect == "postgresql":
        store = PostgresLease(
            database=database,
            lock_key=leader.leader_lock_key,
            replica_id=leader.replica_id,
            query_timeout=leader.leader_query_timeout_seconds,
        )
    else:
        store = SQLiteLease(database=database)
    return LeaseElector(
        store=store,
        name=leader.leader_name,
        replica_id=leader.replica_id,
        ttl=leader.leader_lease_ttl_seconds,
        check_interval=leader.leader_check_interval_seconds,
        acquire_interval=leader.leader_acquire_interval_seconds,
    )
