"""Read streaming-replication status from a PostgreSQL primary (``pg_stat_replication``), or
from the leader a failover driver names (:func:`leader_replication`)."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from controlplane.core.errors import ControlPlaneError
from controlplane.failover.driver import REPLICATING, ClusterState, DriverError, FailoverDriver
from controlplane.failover.nodes import Node
from controlplane.targets.dr import ReplicaStatus

QUERY = """
SELECT application_name,
       host(client_addr),
       state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
       replay_lag
FROM pg_stat_replication
ORDER BY application_name
"""


class ReplicationReadError(ControlPlaneError):
    """The primary could not be asked for its replication status."""


def read_replication(dsn: str, *, timeout: float = 5.0) -> list[ReplicaStatus]:
    """One :class:`ReplicaStatus` per connected standby (bytes and replay time behind)."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, round(timeout))) as conn:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            rows = conn.execute(QUERY).fetchall()
    except psycopg.Error as exc:
        raise ReplicationReadError(f"cannot read pg_stat_replication: {exc}") from exc
    statuses: list[ReplicaStatus] = []
    for name, client_addr, state, lag_bytes, replay_lag in rows:
        statuses.append(
            ReplicaStatus(
                name=str(name),
                client_addr=None if client_addr is None else str(client_addr),
                state=str(state),
                lag_bytes=None if lag_bytes is None else int(lag_bytes),
                replay_lag=replay_lag if isinstance(replay_lag, timedelta) else None,
            )
        )
    return statuses


def leader_node(driver: FailoverDriver) -> tuple[ClusterState, Node]:
    """The cluster the HA engine reports (``GET /cluster``) and its running leader's PostgreSQL
    server; ReplicationReadError when the engine does not answer or names no running leader."""
    try:
        state = driver.cluster()
    except DriverError as exc:
        raise ReplicationReadError(f"cannot read the cluster: {exc}") from exc
    leader = state.leader
    if leader is None:
        members = ", ".join(f"{m.name} {m.role} {m.state}" for m in state.members) or "none"
        raise ReplicationReadError(f"no running leader (members: {members})")
    node = leader.node()
    if node is None:
        raise ReplicationReadError(f"{leader.name}: no PostgreSQL address in the cluster state")
    return state, node


def leader_replication(
    driver: FailoverDriver, *, timeout: float = 5.0
) -> tuple[str, list[ReplicaStatus]]:
    """The leader the HA engine names (``GET /cluster``) and the replication it reports: its
    ``pg_stat_replication`` rows (state, bytes and replay time behind), then every other member
    the engine lists that is not connected, with the engine's state for it (``stopped``,
    ``starting`` ...), so a missing replica is named with the reason."""
    state, node = leader_node(driver)
    rows = read_replication(node.dsn(timeout=timeout), timeout=timeout)
    connected = {row.name for row in rows}
    rows += [
        ReplicaStatus(
            name=member.name,
            client_addr=member.host,
            # Not in pg_stat_replication: never counted as streaming, whatever the DCS says.
            state="not connected" if member.state == REPLICATING else member.state or "unknown",
            lag_bytes=member.lag_bytes,
            replay_lag=None,
        )
        for member in state.replicas
        if member.name not in connected
    ]
    return node.name, rows
