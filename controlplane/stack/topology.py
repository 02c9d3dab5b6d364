"""The local stack's PostgreSQL: an etcd and two Patroni members, whichever of them leads.

Patroni decides who leads (and the stack never asks for a particular member), so everything
that talks to the database gets every member: the write connection string lists them all with
``target_session_attrs=read-write`` (the app adds it), the read one prefers a standby, and the
control plane gets the members' addresses and Patroni REST APIs. This module is the one place
those strings are made from the stack's ports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.stack.backends import Etcd
from controlplane.stack.patroni import SUPERUSER, PatroniMember

#: Patroni's etcd in the stack (the Kubernetes cluster, when the stack runs one, has its own).
DCS = Etcd.name
#: The members, in start order (Patroni, not this order, decides who leads).
MEMBERS: tuple[str, ...] = ("member-1", "member-2")
#: Their backend names in the stack (``patroni-member-1`` ...).
MEMBER_BACKENDS: tuple[str, ...] = tuple(PatroniMember.backend_name(m) for m in MEMBERS)
#: The database the inventory API uses.
INVENTORY_DATABASE = "inventory"

StackPorts = Mapping[str, Mapping[str, int]]


def _hosts(stack_ports: StackPorts) -> str:
    return ",".join(f"127.0.0.1:{stack_ports[b]['postgres']}" for b in MEMBER_BACKENDS)


def write_url(stack_ports: StackPorts, dbname: str = INVENTORY_DATABASE) -> str:
    """Every member, for writes: the app opens it with ``target_session_attrs=read-write``, so
    libpq finds whichever member leads, before and after a failover."""
    return f"postgresql://{SUPERUSER}@{_hosts(stack_ports)}/{dbname}"


def read_url(stack_ports: StackPorts, dbname: str = INVENTORY_DATABASE) -> str:
    """Every member, for reads: a standby when one answers, else the leader."""
    return f"{write_url(stack_ports, dbname)}?target_session_attrs=prefer-standby"


def database_nodes(stack_ports: StackPorts) -> str:
    """``CONTROLPLANE_DATABASE_NODES``: each member's PostgreSQL (the DR checks and view ask
    the writable one for ``pg_stat_replication``)."""
    return ",".join(
        f"{member}=127.0.0.1:{stack_ports[backend]['postgres']}"
        for member, backend in zip(MEMBERS, MEMBER_BACKENDS, strict=True)
    )


def patroni_urls(stack_ports: StackPorts) -> str:
    """``CONTROLPLANE_PATRONI_URLS``: each member's Patroni REST API."""
    return ",".join(f"http://127.0.0.1:{stack_ports[b]['rest']}" for b in MEMBER_BACKENDS)


@dataclass(frozen=True, kw_only=True)
class MemberView:
    """One member as Patroni's ``GET /cluster`` shows it."""

    member: str
    role: str
    state: str
    timeline: int | None
    #: Bytes of WAL behind the leader (None for the leader; "unknown" while Patroni cannot say).
    lag: int | str | None

    @property
    def backend(self) -> str:
        return PatroniMember.backend_name(self.member)

    @property
    def leads(self) -> bool:
        return self.role in {"leader", "standby_leader"}

    def describe(self) -> str:
        timeline = "-" if self.timeline is None else str(self.timeline)
        lag = "" if self.lag is None else f", {format_lag(self.lag)} behind"
        return f"{self.role}, {self.state}, timeline {timeline}{lag}"


def format_lag(lag: int | str | None) -> str:
    """Bytes behind the leader, readable (Patroni's own word when it cannot say)."""
    if lag is None:
        return "-"
    if isinstance(lag, str):
        return lag
    if lag < 1024:
        return f"{lag} B"
    if lag < 1024 * 1024:
        return f"{lag / 1024:.1f} kB"
    return f"{lag / (1024 * 1024):.1f} MB"


def member_views(cluster_state: Mapping[str, Any]) -> list[MemberView]:
    """The members of a ``GET /cluster`` answer, by name."""
    views = []
    members: Sequence[Mapping[str, Any]] = cluster_state.get("members", [])
    for entry in members:
        leads = entry.get("role") in {"leader", "standby_leader"}
        timeline = entry.get("timeline")
        lag = entry.get("lag")
        views.append(
            MemberView(
                member=str(entry.get("name", "?")),
                role=str(entry.get("role", "?")),
                state=str(entry.get("state", "?")),
                timeline=timeline if isinstance(timeline, int) else None,
                lag=None if leads else (lag if isinstance(lag, int | str) else "unknown"),
            )
        )
    return sorted(views, key=lambda view: view.member)
