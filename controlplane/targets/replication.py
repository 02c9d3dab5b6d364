"""Read streaming-replication status from a PostgreSQL primary (``pg_stat_replication``)."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from controlplane.core.errors import ControlPlaneError
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
