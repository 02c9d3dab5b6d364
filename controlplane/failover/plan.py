"""Choosing the standby to promote (pure: no I/O).

The candidate is the reachable standby that has received the most WAL (smallest byte lag behind
the last primary position seen alive). Its data loss is bounded by that byte lag and, in time, by
the replay lag the primary last reported for it. A synchronous standby has every acknowledged
commit: its time lag counts as zero and it wins. The choice is refused when the time lag exceeds
the tier's RPO budget or cannot be known — unless an operator forces it.

:func:`choose_candidate` chooses among probed PostgreSQL standbys (the local driver);
:func:`choose_member` among the members an HA engine reports (``GET /cluster``), by the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from controlplane.failover.driver import Member
from controlplane.failover.nodes import NodeStatus, ReplicationSample

#: Member states in which PostgreSQL runs and can be promoted (``running``: a replica whose
#: leader is gone, so nothing streams).
PROMOTABLE_STATES = frozenset({"streaming", "running"})


def rpo_refusal(name: str, lag_time: timedelta | None, rpo: timedelta) -> str | None:
    """Why promoting a standby ``lag_time`` behind breaks the RPO budget (None: it does not)."""
    if lag_time is None:
        return f"{name}: lag unknown (no healthy sample of the primary); promote only with --force"
    if lag_time > rpo:
        return (
            f"{name}: lag {lag_time.total_seconds():.1f} s exceeds the RPO budget of "
            f"{rpo.total_seconds():.0f} s; promote only with --force"
        )
    return None


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
    refused = None if force else rpo_refusal(best.status.node.name, best.lag_time, rpo)
    return Choice(candidate=best, refused=refused, considered=considered)


@dataclass(frozen=True, kw_only=True)
class MemberCandidate:
    name: str
    #: Bytes behind the last position the leader published (None: unknown).
    lag_bytes: int | None
    #: Time behind: zero for a synchronous standby, else the leader's last replay-lag sample.
    lag_time: timedelta | None
    synchronous: bool

    def evidence(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lag_bytes": self.lag_bytes,
            "lag_s": None if self.lag_time is None else self.lag_time.total_seconds(),
            "synchronous": self.synchronous,
        }


@dataclass(frozen=True, kw_only=True)
class MemberChoice:
    candidate: MemberCandidate | None
    refused: str | None
    considered: tuple[MemberCandidate, ...]
    #: Members not considered, and why (the leader, a ``nofailover`` tag, PostgreSQL down).
    excluded: dict[str, str] = field(default_factory=dict)
    forced: bool = False

    @property
    def allowed(self) -> bool:
        return self.candidate is not None and self.refused is None

    def evidence(self) -> dict[str, Any]:
        return {
            "candidate": None if self.candidate is None else self.candidate.name,
            "refused": self.refused,
            "forced": self.forced,
            "considered": [c.evidence() for c in self.considered],
            "excluded": dict(self.excluded),
        }


def choose_member(
    members: Sequence[Member],
    *,
    lag_times: Mapping[str, timedelta],
    rpo: timedelta,
    leader: str | None = None,
    force: bool = False,
) -> MemberChoice:
    """Pick the member to promote: the smallest lag within the RPO budget, or say why none.

    ``leader`` (the member leading now, or the one that was lost) is never a candidate.
    ``lag_times`` maps members to the replay lag the leader last reported for them
    (``pg_stat_replication``); a synchronous standby counts as zero lag, and so does a member
    with zero bytes behind. Among the others the fewest bytes behind wins.
    """
    excluded: dict[str, str] = {}
    candidates: list[MemberCandidate] = []
    for member in members:
        if member.is_leader or member.name == leader:
            excluded[member.name] = "the leader"
        elif member.nofailover:
            excluded[member.name] = "tagged nofailover"
        elif member.state not in PROMOTABLE_STATES:
            excluded[member.name] = f"PostgreSQL {member.state or 'state unknown'}"
        else:
            lag_time = timedelta(0) if member.synchronous else lag_times.get(member.name)
            if lag_time is None and member.lag_bytes == 0:
                lag_time = timedelta(0)
            candidates.append(
                MemberCandidate(
                    name=member.name,
                    lag_bytes=member.lag_bytes,
                    lag_time=lag_time,
                    synchronous=member.synchronous,
                )
            )
    if not candidates:
        return MemberChoice(
            candidate=None,
            refused="no member can be promoted"
            + (": " + "; ".join(f"{n}: {why}" for n, why in excluded.items()) if excluded else ""),
            considered=(),
            excluded=excluded,
            forced=force,
        )
    best = min(
        candidates,
        key=lambda c: (
            not c.synchronous,
            math.inf if c.lag_bytes is None else c.lag_bytes,
            math.inf if c.lag_time is None else c.lag_time.total_seconds(),
            c.name,
        ),
    )
    refused = None if force else rpo_refusal(best.name, best.lag_time, rpo)
    return MemberChoice(
        candidate=best,
        refused=refused,
        considered=tuple(candidates),
        excluded=excluded,
        forced=force,
    )
