"""The leader lease row: a fencing counter that goes up on every takeover.

Leader election itself (who holds the lock) is in :mod:`controlplane.leader`; this module only
reads and writes the counter, on a session or on the elector's own connection.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import select, update

from controlplane.store._sql import Executor, dialect_name, insert_for
from controlplane.store.errors import FencingTokenStale
from controlplane.store.models import LeaderLease

__all__ = [
    "LeaseInfo",
    "ensure_lease",
    "read_lease",
    "renew_lease",
    "require_current_token",
    "take_over_lease",
]


class LeaseInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    fencing_token: int
    holder: str | None
    acquired_at: AwareDatetime | None
    renewed_at: AwareDatetime | None


def ensure_lease(executor: Executor, *, name: str) -> None:
    """Create the lease row (token 0) if it does not exist yet."""
    executor.execute(
        insert_for(executor, LeaderLease)
        .values(name=name, fencing_token=0)
        .on_conflict_do_nothing(index_elements=["name"])
    )


def take_over_lease(executor: Executor, *, name: str, holder: str, at: datetime) -> int:
    """Increment the fencing token for a new leader; returns the new token."""
    ensure_lease(executor, name=name)
    token = executor.execute(
        update(LeaderLease)
        .where(LeaderLease.name == name)
        .values(
            fencing_token=LeaderLease.fencing_token + 1,
            holder=holder,
            acquired_at=at,
            renewed_at=at,
        )
        .returning(LeaderLease.fencing_token)
    ).scalar_one()
    return int(token)


def renew_lease(executor: Executor, *, name: str, token: int, at: datetime) -> bool:
    """Record that the holder of ``token`` is alive; False when the token is no longer current."""
    renewed = executor.execute(
        update(LeaderLease)
        .where((LeaderLease.name == name) & (LeaderLease.fencing_token == token))
        .values(renewed_at=at)
        .returning(LeaderLease.fencing_token)
    ).scalar_one_or_none()
    return renewed is not None


def read_lease(executor: Executor, *, name: str) -> LeaseInfo | None:
    row = executor.execute(
        select(
            LeaderLease.name,
            LeaderLease.fencing_token,
            LeaderLease.holder,
            LeaderLease.acquired_at,
            LeaderLease.renewed_at,
        ).where(LeaderLease.name == name)
    ).one_or_none()
    return None if row is None else LeaseInfo.model_validate(row._asdict())


def require_current_token(executor: Executor, *, name: str, token: int) -> None:
    """Raise :class:`FencingTokenStale` unless ``token`` is the lease's current token.

    On PostgreSQL the row is share-locked until the end of the transaction, so a takeover
    (which updates it) waits until the caller's write is committed.
    """
    statement = select(LeaderLease.fencing_token).where(LeaderLease.name == name)
    if dialect_name(executor) == "postgresql":
        statement = statement.with_for_update(read=True)
    current = executor.execute(statement).scalar_one_or_none()
    if current is None or int(current) != token:
        raise FencingTokenStale(name=name, token=token, current=current)
