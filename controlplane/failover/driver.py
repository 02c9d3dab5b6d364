"""The failover driver: what the control plane asks of a PostgreSQL HA engine.

An HA engine (Patroni, ``patroni.py``) holds the leader lease and moves the primary role; the
control plane reads the cluster from it, decides through the action gate, and asks it to act.
The driver is that conversation: the cluster as the engine sees it (:class:`ClusterState`), a
planned switchover, a failover to a chosen candidate, and whether the engine may fail over on
its own (:meth:`FailoverDriver.set_paused`: Patroni's maintenance mode).

Errors are typed: :class:`DriverUnavailable` when no member of the engine answers (nothing is
known, which never reads as "no leader"), :class:`DriverRefused` when the engine answers and
refuses, with its own reason (Patroni's 412 / 503 text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from controlplane.core.errors import ControlPlaneError
from controlplane.failover.nodes import Node

__all__ = [
    "LEADER_ROLES",
    "REPLICATING",
    "SYNCHRONOUS_ROLES",
    "ClusterState",
    "DriverError",
    "DriverRefused",
    "DriverUnavailable",
    "FailoverDriver",
    "Member",
]

#: Roles of the member holding the leader lease.
LEADER_ROLES = frozenset({"leader", "standby_leader"})
#: Roles of a standby that confirms commits before they are acknowledged.
SYNCHRONOUS_ROLES = frozenset({"sync_standby", "quorum_standby"})
#: The state of a replica receiving WAL from the leader right now.
REPLICATING = "streaming"


class DriverError(ControlPlaneError):
    """The HA engine could not do what the control plane asked."""


class DriverUnavailable(DriverError):
    """No member of the HA engine answered: the cluster's state is unknown."""


class DriverRefused(DriverError):
    """The HA engine answered and refused (``status``: its HTTP status, ``reason``: its text)."""

    def __init__(self, *, operation: str, status: int, reason: str) -> None:
        super().__init__(f"{operation} refused ({status}): {reason}")
        self.operation = operation
        self.status = status
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Member:
    """One member of the cluster as the HA engine reports it."""

    name: str
    #: ``leader``, ``standby_leader``, ``sync_standby``, ``quorum_standby`` or ``replica``.
    role: str
    #: The leader's PostgreSQL state (``running``, ``stopped``, ``starting`` ...) or a replica's
    #: replication state (``streaming``, ``in archive recovery``) when it has one.
    state: str
    host: str | None = None
    port: int | None = None
    api_url: str | None = None
    timeline: int | None = None
    #: Bytes of WAL behind the last position the leader published; None for the leader and
    #: when the engine does not know it.
    lag_bytes: int | None = None
    #: The member may never be promoted (Patroni's ``nofailover`` tag).
    nofailover: bool = False

    @property
    def is_leader(self) -> bool:
        return self.role in LEADER_ROLES

    @property
    def synchronous(self) -> bool:
        return self.role in SYNCHRONOUS_ROLES

    @property
    def streaming(self) -> bool:
        return not self.is_leader and self.state == REPLICATING

    def node(self) -> Node | None:
        """The member's PostgreSQL server as probes and the write probe reach it."""
        if self.host is None or self.port is None:
            return None
        return Node(name=self.name, host=self.host, port=self.port)


@dataclass(frozen=True, kw_only=True)
class ClusterState:
    """The cluster at one instant, as one member of the HA engine answered."""

    members: tuple[Member, ...]
    #: The engine does not fail over by itself (Patroni: maintenance mode).
    paused: bool
    observed_at: datetime
    #: Which endpoint answered.
    source: str

    @property
    def leader(self) -> Member | None:
        """The member holding the leader lease with its PostgreSQL running, if any."""
        for member in self.members:
            if member.is_leader and member.state == "running":
                return member
        return None

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    @property
    def replicas(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if not m.is_leader)

    def nodes(self) -> list[Node]:
        """Every member's PostgreSQL server (the write probe's multi-host list)."""
        return [node for node in (m.node() for m in self.members) if node is not None]


class FailoverDriver(Protocol):
    """What the control plane asks of the HA engine (:class:`~.patroni.PatroniDriver`)."""

    @property
    def endpoints(self) -> Sequence[str]:
        """Where the engine is reached (for logs and evidence)."""

    def cluster(self) -> ClusterState:
        """The cluster now. Raises :class:`DriverUnavailable` when nobody answers."""

    def switchover(self, *, leader: str, candidate: str) -> str:
        """Planned switchover from ``leader`` to ``candidate``; the engine's message once it
        happened. Raises :class:`DriverRefused` with the engine's reason."""

    def failover(self, *, candidate: str) -> str:
        """Promote ``candidate`` (the leader may be gone); the engine's message."""

    def set_paused(self, paused: bool) -> None:
        """Forbid (True) or allow (False) automatic failover by the engine itself."""

    def close(self) -> None:
        """Release the driver's connections."""
