"""The leader lease row: who leads, until when, and a fencing counter that goes up on every
takeover.

Leader election itself (when to take, renew or give up the lease) is in
:mod:`controlplane.leader`; this module only reads and writes the row, on a session or on the
elector's own connection. Every statement is a single conditional ``UPDATE``, so two replicas
racing for the lease cannot both win.

Time: on PostgreSQL every comparison and expiry uses the database server's clock
(``clock_timestamp()``), so replicas on machines whose clocks disagree still agree on when a
lease has expired; on SQLite (one machine) the caller's clock is used.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import ColumnElement, func, literal, or_, select, update

from controlplane.store._sql import Executor, dialect_name, insert_for
from controlplane.store.errors import FencingTokenStale
from controlplane.store.models import LeaderLease, UTCDateTime

__all__ = [
    "Grant",
    "LeaseInfo",
    "ensure_lease",
    "read_lease",
    "release_lease",
    "renew_lease",
    "require_current_token",
    "take_over_lease",
    "try_take_lease",
]


class LeaseInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    fencing_token: int
    holder: str | None
    acquired_at: AwareDatetime | None
    renewed_at: AwareDatetime | None
    #: When the lease lapses unless its holder renews it (None: never taken, or released).
    expires_at: AwareDatetime | None = None
    #: How to tell whether the holder is still alive without waiting for the expiry (the
    #: elector's business: a PostgreSQL session, a local process).
    holder_session: str | None = None


class Grant(NamedTuple):
    """A lease taken: the new fencing token and when the lease expires unless renewed."""

    token: int
    expires_at: datetime


def _aware(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _now(executor: Executor, at: datetime | None) -> ColumnElement[Any]:
    """ "Now" in SQL: the server's clock on PostgreSQL, else ``at`` (default: this clock)."""
    if dialect_name(executor) == "postgresql":
        return func.clock_timestamp()
    return literal(at or datetime.now(UTC), type_=UTCDateTime())


def _expiry(executor: Executor, at: datetime | None, ttl: float) -> ColumnElement[Any] | datetime:
    if dialect_name(executor) == "postgresql":
        return func.clock_timestamp() + timedelta(seconds=ttl)
    return (at or datetime.now(UTC)) + timedelta(seconds=ttl)


def ensure_lease(executor: Executor, *, name: str) -> None:
    """Create the lease row (token 0, nobody holds it) if it does not exist yet."""
    executor.execute(
        insert_for(executor, LeaderLease)
        .values(name=name, fencing_token=0)
        .on_conflict_do_nothing(index_elements=["name"])
    )


def _take(
    executor: Executor,
    *,
    name: str,
    holder: str,
    at: datetime,
    ttl: float,
    session: str | None,
    condition: ColumnElement[bool] | None,
) -> Grant | None:
    ensure_lease(executor, name=name)
    where = LeaderLease.name == name
    if condition is not None:
        where = where & condition
    row = executor.execute(
        update(LeaderLease)
        .where(where)
        .values(
            fencing_token=LeaderLease.fencing_token + 1,
            holder=holder,
            holder_session=session,
            acquired_at=at,
            renewed_at=at,
            expires_at=_expiry(executor, at, ttl),
        )
        .returning(LeaderLease.fencing_token, LeaderLease.expires_at)
    ).one_or_none()
    return None if row is None else Grant(token=int(row[0]), expires_at=_aware(row[1]))


def take_over_lease(
    executor: Executor,
    *,
    name: str,
    holder: str,
    at: datetime,
    ttl: float = 10.0,
    session: str | None = None,
) -> int:
    """Take the lease whoever holds it (a new token); returns the new token."""
    grant = _take(
        executor, name=name, holder=holder, at=at, ttl=ttl, session=session, condition=None
    )
    assert grant is not None  # the row exists: ensure_lease made it
    return grant.token


def try_take_lease(
    executor: Executor,
    *,
    name: str,
    holder: str,
    at: datetime,
    ttl: float,
    seen_token: int,
    gone_session: str | None = None,
    session: str | None = None,
) -> Grant | None:
    """Take the lease if it is still at ``seen_token`` and free: nobody holds it, it has
    expired, or its holder's session is ``gone_session``, which the caller found dead. Returns
    the new token and expiry, or None when another replica holds a live lease or took it
    first."""
    free = or_(
        LeaderLease.holder.is_(None),
        LeaderLease.expires_at.is_(None),
        LeaderLease.expires_at <= _now(executor, at),
    )
    if gone_session is not None:
        free = or_(free, LeaderLease.holder_session == gone_session)
    return _take(
        executor,
        name=name,
        holder=holder,
        at=at,
        ttl=ttl,
        session=session,
        condition=(LeaderLease.fencing_token == seen_token) & free,
    )


def renew_lease(
    executor: Executor,
    *,
    name: str,
    token: int,
    at: datetime,
    ttl: float = 10.0,
    session: str | None = None,
) -> datetime | None:
    """Extend the lease of the holder of ``token`` by ``ttl`` from now; returns the new expiry,
    or None when the token is no longer current or the lease has already expired (a holder that
    stalled past its expiry must take the lease again, with a new token)."""
    expires = executor.execute(
        update(LeaderLease)
        .where(
            (LeaderLease.name == name)
            & (LeaderLease.fencing_token == token)
            & (LeaderLease.expires_at > _now(executor, at))
        )
        .values(renewed_at=at, expires_at=_expiry(executor, at, ttl), holder_session=session)
        .returning(LeaderLease.expires_at)
    ).scalar_one_or_none()
    return None if expires is None else _aware(expires)


def release_lease(executor: Executor, *, name: str, token: int, at: datetime) -> bool:
    """Give the lease up at once (a clean stop): a follower takes over at its next attempt
    instead of waiting for the expiry. False when ``token`` was no longer current."""
    released = executor.execute(
        update(LeaderLease)
        .where((LeaderLease.name == name) & (LeaderLease.fencing_token == token))
        .values(holder=None, holder_session=None, expires_at=_now(executor, at))
        .returning(LeaderLease.fencing_token)
    ).scalar_one_or_none()
    return released is not None


def read_lease(executor: Executor, *, name: str) -> LeaseInfo | None:
    row = executor.execute(
        select(
            LeaderLease.name,
            LeaderLease.fencing_token,
            LeaderLease.holder,
            LeaderLease.acquired_at,
            LeaderLease.renewed_at,
            LeaderLease.expires_at,
            LeaderLease.holder_session,
        ).where(LeaderLease.name == name)
    ).one_or_none()
    return None if row is None else LeaseInfo.model_validate(row._asdict())


def require_current_token(
    executor: Executor, *, name: str, token: int, at: datetime | None = None
) -> None:
    """Raise :class:`FencingTokenStale` unless ``token`` is the lease's current token and the
    lease has not expired.

    On PostgreSQL the row is share-locked until the end of the transaction, so a takeover
    (which updates it) waits until the caller's write is committed or rolled back.
    """
    statement = select(
        LeaderLease.fencing_token, LeaderLease.expires_at > _now(executor, at)
    ).where(LeaderLease.name == name)
    if dialect_name(executor) == "postgresql":
        statement = statement.with_for_update(read=True, of=LeaderLease)
    row = executor.execute(statement).one_or_none()
    current = None if row is None else int(row[0])
    if current != token:
        raise FencingTokenStale(name=name, token=token, current=current)
    if not row or not row[1]:
        raise FencingTokenStale(name=name, token=token, current=current, expired=True)
