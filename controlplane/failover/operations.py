"""Moving the leader role through a failover driver, and seeing it done.

:func:`move_leader` asks the driver for a planned switchover (the leader hands over cleanly) or a
failover to a chosen candidate, then reads the cluster until the candidate leads on a new
timeline and, with ``follow_timeout``, until the old leader streams from it again (Patroni
demotes it and, after a crash, rewinds it with ``pg_rewind``). Everything it saw is a
:class:`RoleChange`, the evidence of the audit entry and of a drill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from controlplane.failover.driver import ClusterState, DriverError, FailoverDriver, Member
from controlplane.failover.nodes import Node

__all__ = ["RoleChange", "RoleChangeFailed", "member_streams", "move_leader", "wait_for_cluster"]

Kind = Literal["switchover", "failover"]


class RoleChangeFailed(DriverError):
    """The driver accepted the request but the candidate did not take over in time."""


@dataclass(frozen=True, kw_only=True)
class RoleChange:
    kind: Kind
    old_leader: str | None
    new_leader: str
    old_timeline: int | None
    new_timeline: int | None
    #: The driver's own message (Patroni: ``Successfully switched over to "member-2"``).
    message: str
    started_at: datetime
    #: First time the cluster showed the candidate leading on a new timeline.
    promoted_at: datetime
    #: The old leader streams from the new one again (None: not waited for, or no old leader).
    old_leader_following: bool | None
    new_leader_node: Node

    def evidence(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "old_leader": self.old_leader,
            "new_leader": self.new_leader,
            "old_timeline": self.old_timeline,
            "new_timeline": self.new_timeline,
            "message": self.message,
            "started_at": self.started_at.isoformat(),
            "promoted_at": self.promoted_at.isoformat(),
            "old_leader_following": self.old_leader_following,
        }


def wait_for_cluster(
    driver: FailoverDriver,
    check: Callable[[ClusterState], bool],
    *,
    timeout: float,
    interval: float = 0.25,
) -> ClusterState | None:
    """The first cluster state ``check`` accepts within ``timeout`` (None: none did). A read
    that fails counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = driver.cluster()
        except DriverError:
            state = None
        if state is not None and check(state):
            return state
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def _leads_anew(name: str, timeline: int | None) -> Callable[[ClusterState], bool]:
    def check(state: ClusterState) -> bool:
        leader = state.leader
        return (
            leader is not None
            and leader.name == name
            and (timeline is None or (leader.timeline or 0) > timeline)
        )

    return check


def member_streams(name: str) -> Callable[[ClusterState], bool]:
    """A check for :func:`wait_for_cluster`: ``name`` streams from the leader."""

    def check(state: ClusterState) -> bool:
        member = state.member(name)
        return member is not None and member.streaming

    return check


def move_leader(
    driver: FailoverDriver,
    *,
    kind: Kind,
    candidate: Member,
    leader: Member | None,
    promote_timeout: float = 60.0,
    follow_timeout: float | None = 60.0,
) -> RoleChange:
    """Switch over from ``leader`` (required) or fail over to ``candidate``; wait for the
    candidate to lead on a new timeline and (``follow_timeout``) for the old leader to follow.

    Raises :class:`~.driver.DriverRefused` with the driver's reason, and
    :class:`RoleChangeFailed` when the candidate never leads."""
    node = candidate.node()
    if node is None:
        raise RoleChangeFailed(f"{candidate.name}: no PostgreSQL address in the cluster state")
    old_timeline = None if leader is None else leader.timeline
    started_at = datetime.now(UTC)
    if kind == "switchover":
        if leader is None:
            raise RoleChangeFailed("a switchover needs a leader to hand over")
        message = driver.switchover(leader=leader.name, candidate=candidate.name)
    else:
        message = driver.failover(candidate=candidate.name)
    state = wait_for_cluster(
        driver, _leads_anew(candidate.name, old_timeline), timeout=promote_timeout
    )
    if state is None or state.leader is None:
        raise RoleChangeFailed(
            f"{candidate.name} did not lead on a new timeline within {promote_timeout:.0f} s "
            f"(the driver said: {message})"
        )
    promoted_at = state.observed_at
    following: bool | None = None
    if leader is not None and follow_timeout is not None:
        followed = wait_for_cluster(driver, member_streams(leader.name), timeout=follow_timeout)
        following = followed is not None
    return RoleChange(
        kind=kind,
        old_leader=None if leader is None else leader.name,
        new_leader=candidate.name,
        old_timeline=old_timeline,
        new_timeline=state.leader.timeline,
        message=message,
        started_at=started_at,
        promoted_at=promoted_at,
        old_leader_following=following,
        new_leader_node=node,
    )
