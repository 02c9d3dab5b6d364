"""Choosing the standby to promote (pure: no I/O).

The candidate is the reachable standby that has received the most WAL (smallest byte lag behind
the last primary position seen alive). Its data loss is bounded by that byte lag and, in time, by
the replay lag the primary last reported for it. The choice is refused when the time lag exceeds
the tier's RPO budget or cannot be known — unless an operator forces it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from controlplane.failover.nodes import NodeStatus, ReplicationSample


@dataclass(frozen=True, kw_only=True)
class Candidate:
    status: NodeStatus
    #: Bytes of WAL the primary had written that this standby had not received (lower bound
    #: of what a promotion loses); None when the last primary position is unknown.
    lag_bytes: int | None
    #: Replay lag the primary reported for this standby in its last healthy sample.
    lag_time: timedelta | None
    synchronous: bool


@dataclass(frozen=True, kw_only=True)
class Choice:
    candidate: Candidate | None
    refused: str | None
    considered: tuple[Candidate, ...]

    @property
    def allowed(self) -> bool:
        return self.candidate is not None and self.refused is None


def choose_candidate(
    standbys: Sequence[NodeStatus],
    *,
    last_primary_lsn: int | None,
    last_samples: Mapping[str, ReplicationSample],
    rpo: timedelta,
    force: bool = False,
) -> Choice:
    """Pick the standby to promote, or say why none may be promoted.

    ``last_samples`` maps standby names (``application_name``) to the primary's last
    ``pg_stat_replication`` row for them. A synchronous standby has every acknowledged commit,
    so its time lag counts as zero for the RPO check.
    """
    candidates: list[Candidate] = []
    for status in standbys:
        if not status.in_recovery:
            continue  # already a primary: not a standby to promote
        sample = last_samples.get(status.node.name)
        lag_bytes = (
            None
            if last_primary_lsn is None or status.wal_lsn is None
            else max(0, last_primary_lsn - status.wal_lsn)
        )
        synchronous = sample is not None and sample.sync_state == "sync"
        lag_time = timedelta(0) if synchronous else (sample.replay_lag if sample else None)
        if lag_time is None and lag_bytes == 0:
            lag_time = timedelta(0)
        candidates.append(
            Candidate(
                status=status, lag_bytes=lag_bytes, lag_time=lag_time, synchronous=synchronous
            )
        )
    if not candidates:
        return Choice(candidate=None, refused="no reachable standby to promote", considered=())
    best = max(candidates, key=lambda c: (c.synchronous, c.status.wal_lsn or -1))
    considered = tuple(candidates)
    if force:
        return Choice(candidate=best, refused=None, considered=considered)
    if best.lag_time is None:
        return Choice(
            candidate=best,
            refused=f"{best.status.node.name}: lag unknown (no healthy sample of the primary); "
            "promote only with --force",
            considered=considered,
        )
    if best.lag_time > rpo:
        return Choice(
            candidate=best,
            refused=f"{best.status.node.name}: lag {best.lag_time.total_seconds():.1f} s exceeds "
            f"the RPO budget of {rpo.total_seconds():.0f} s; promote only with --force",
            considered=considered,
        )
    return Choice(candidate=best, refused=None, considered=considered)
