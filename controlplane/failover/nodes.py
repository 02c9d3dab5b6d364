"""PostgreSQL nodes as the failover logic sees them: probes, LSNs, promotion.

Every call has a short timeout: a dead primary must be detected in seconds, not after a TCP
timeout. Errors are typed (:class:`NodeUnreachable`, :class:`PromotionFailed`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from controlplane.core.config import FailoverSettings
from controlplane.core.errors import ControlPlaneError


class NodeUnreachable(ControlPlaneError):
    """A node did not answer a probe."""


class PromotionFailed(ControlPlaneError):
    """``pg_promote`` did not turn the standby into a writable primary."""


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    host: str
    port: int
    user: str = "postgres"
    dbname: str = "postgres"

    def dsn(self, *, timeout: float = 2.0) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} dbname={self.dbname} "
            f"connect_timeout={max(1, round(timeout))} application_name=controlplane-failover"
        )


def configured_nodes(settings: FailoverSettings) -> list[Node]:
    """The nodes of ``CONTROLPLANE_DATABASE_NODES``, primary first."""
    return [Node(name=a.name, host=a.host, port=a.port) for a in settings.database_nodes]


@dataclass(frozen=True, kw_only=True)
class NodeStatus:
    node: Node
    in_recovery: bool
    #: Primary: current WAL write position. Standby: last WAL position received (flushed).
    wal_lsn: int | None
    #: Standby only: last WAL position replayed.
    replay_lsn: int | None
    #: Standby only: whether the WAL receiver is streaming from a primary right now.
    streaming: bool


def lsn_to_int(text: str | None) -> int | None:
    """``'16/B374D848'`` → byte position."""
    if text is None:
        return None
    high, _, low = str(text).partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def probe(node: Node, *, timeout: float = 1.0) -> NodeStatus:
    """One health probe: connect, ask for the role and WAL positions."""
    try:
        with psycopg.connect(node.dsn(timeout=timeout), autocommit=True) as conn:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            row = conn.execute(
                "SELECT pg_is_in_recovery(),"
                " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()::text"
                "      ELSE pg_current_wal_lsn()::text END,"
                " pg_last_wal_replay_lsn()::text,"
                " EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')"
            ).fetchone()
    except psycopg.Error as exc:
        raise NodeUnreachable(f"{node.name} ({node.host}:{node.port}): {exc}") from exc
    assert row is not None
    return NodeStatus(
        node=node,
        in_recovery=bool(row[0]),
        wal_lsn=lsn_to_int(row[1]),
        replay_lsn=lsn_to_int(row[2]),
        streaming=bool(row[3]),
    )


@dataclass(frozen=True, kw_only=True)
class ReplicationSample:
    """What the primary said about one standby while it was still alive."""

    name: str
    sent_lsn: int | None
    flush_lsn: int | None
    replay_lag: timedelta | None
    sync_state: str


def replication_samples(node: Node, *, timeout: float = 1.0) -> list[ReplicationSample]:
    try:
        with psycopg.connect(node.dsn(timeout=timeout), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name, sent_lsn::text, flush_lsn::text, replay_lag, sync_state"
                " FROM pg_stat_replication"
            ).fetchall()
    except psycopg.Error as exc:
        raise NodeUnreachable(f"{node.name}: {exc}") from exc
    return [
        ReplicationSample(
            name=str(name),
            sent_lsn=lsn_to_int(sent),
            flush_lsn=lsn_to_int(flush),
            replay_lag=lag if isinstance(lag, timedelta) else None,
            sync_state=str(sync_state),
        )
        for name, sent, flush, lag, sync_state in rows
    ]


def promote(node: Node, *, timeout: float = 30.0) -> int | None:
    """Promote a standby and wait until it accepts writes; returns its WAL position then.

    A promoted standby inherits ``synchronous_standby_names`` from the primary it was cloned
    from; with no standby of its own every commit would wait forever, so the setting is cleared
    (the new primary runs asynchronous until a standby attaches again).
    """
    deadline = time.monotonic() + timeout
    try:
        with psycopg.connect(node.dsn(timeout=5), autocommit=True) as conn:
            row = conn.execute("SELECT pg_promote(true, %s)", (max(1, int(timeout)),)).fetchone()
            if row is None or row[0] is not True:
                raise PromotionFailed(f"{node.name}: pg_promote returned {row}")
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            conn.execute("SELECT pg_reload_conf()")
    except psycopg.Error as exc:
        raise PromotionFailed(f"{node.name}: {exc}") from exc
    while time.monotonic() < deadline:
        status = probe(node, timeout=2)
        if not status.in_recovery:
            return status.wal_lsn
        time.sleep(0.05)
    raise PromotionFailed(f"{node.name}: still in recovery after {timeout:.0f} s")
