"""Planned switchover and DR drills with measured RTO / RPO.

Switchover (no data loss by construction): checkpoint the primary, note its WAL position, shut it
down cleanly (a clean shutdown sends every WAL record, the shutdown checkpoint included, to the
connected standbys), check that the standby has received up to that point, promote it, and turn
the old primary into a standby of the new one (``standby.signal`` + ``primary_conninfo``; the
clean shutdown means it has nothing the new primary lacks, so it follows the new timeline).

A drill runs a switchover (or a failover: SIGKILL and automatic promotion) under the numbered
write probe and reports the RTO a client saw and the acknowledged writes lost, compared with the
tier's targets. :func:`drill_under_probe` is that measurement around any way of moving the
primary role (this module's local switchover, or Patroni's through ``operations.move_leader``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import psycopg

from controlplane.core.errors import ControlPlaneError
from controlplane.failover.nodes import Node, NodeUnreachable, probe, promote
from controlplane.failover.writeprobe import WriteProbe, missing_acknowledged


class SwitchoverAborted(ControlPlaneError):
    """The switchover stopped before promoting; the old primary is restarted as it was."""


class NodeControl(Protocol):
    """Stop / start a node and find its data folder (local processes, or a pod, elsewhere)."""

    def stop(self, node: Node, *, clean: bool) -> None: ...

    def start(self, node: Node) -> None: ...

    def data_dir(self, node: Node) -> Path: ...


@dataclass(frozen=True, kw_only=True)
class SwitchoverRecord:
    old_primary: str
    new_primary: str
    started_at: datetime
    promoted_at: datetime
    old_primary_following: bool
    final_lsn: int | None


def _follow(control: NodeControl, old: Node, new: Node) -> None:
    data_dir = control.data_dir(old)
    (data_dir / "standby.signal").write_text("", encoding="utf-8")
    auto_conf = data_dir / "postgresql.auto.conf"
    kept = [
        line
        for line in (
            auto_conf.read_text(encoding="utf-8").splitlines() if auto_conf.exists() else []
        )
        if not line.startswith(("primary_conninfo", "primary_slot_name"))
    ]
    kept.append(
        f"primary_conninfo = 'host={new.host} port={new.port} user={new.user} "
        f"application_name={old.name}'"
    )
    auto_conf.write_text("\n".join(kept) + "\n", encoding="utf-8")
    owner = data_dir.stat()
    for path in (data_dir / "standby.signal", auto_conf):
        os.chown(path, owner.st_uid, owner.st_gid)


def switchover(
    *, primary: Node, standby: Node, control: NodeControl, timeout: float = 60.0
) -> SwitchoverRecord:
    started_at = datetime.now(UTC)
    try:
        with psycopg.connect(primary.dsn(timeout=5), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error as exc:
        raise SwitchoverAborted(f"{primary.name} did not checkpoint: {exc}") from exc
    status = probe(standby, timeout=2)
    if not status.in_recovery or not status.streaming:
        raise SwitchoverAborted(f"{standby.name} is not a streaming standby")
    control.stop(primary, clean=True)
    final = None
    deadline = time.monotonic() + timeout
    # After a clean shutdown the standby's receive position stops moving at the shutdown
    # checkpoint; wait until it is stable, i.e. everything was received.
    previous: int | None = -1
    while time.monotonic() < deadline:
        current = probe(standby, timeout=2).wal_lsn
        if current is not None and current == previous:
            final = current
            break
        previous = current
        time.sleep(0.2)
    if final is None:
        control.start(primary)
        raise SwitchoverAborted(f"{standby.name} did not settle on the final WAL position")
    promote(standby, timeout=timeout)
    promoted_at = datetime.now(UTC)
    _follow(control, primary, standby)
    control.start(primary)
    following = False
    while time.monotonic() < deadline:
        try:
            old = probe(primary, timeout=2)
        except NodeUnreachable:
            time.sleep(0.2)
            continue
        if old.in_recovery and old.streaming:
            following = True
            break
        time.sleep(0.2)
    return SwitchoverRecord(
        old_primary=primary.name,
        new_primary=standby.name,
        started_at=started_at,
        promoted_at=promoted_at,
        old_primary_following=following,
        final_lsn=final,
    )


@dataclass(frozen=True, kw_only=True)
class DrillResult:
    kind: Literal["switchover", "failover"]
    database: str
    finished_at: datetime
    measured_rto: timedelta
    lost_acknowledged_writes: int
    acknowledged_writes: int
    rto_target: timedelta
    rpo_target: timedelta

    @property
    def succeeded(self) -> bool:
        return self.measured_rto <= self.rto_target and (
            self.lost_acknowledged_writes == 0 or self.rpo_target > timedelta(0)
        )


T = TypeVar("T")


def drill_under_probe(
    *,
    kind: Literal["switchover", "failover"],
    database: str,
    nodes: Sequence[Node],
    act: Callable[[], T],
    new_primary: Callable[[T], Node],
    rto_target: timedelta,
    rpo_target: timedelta,
    warmup_writes: int = 50,
) -> tuple[DrillResult, T]:
    """Run ``act`` (the switchover or failover) under the numbered write probe through every
    node; the RTO is the outage the probe saw, the RPO the acknowledged writes missing on
    ``new_primary(act's result)`` afterwards."""
    writes = WriteProbe(nodes=nodes)
    writes.prepare()
    writes.start()
    try:
        if not writes.wait_for_writes(warmup_writes, timeout=30):
            raise SwitchoverAborted(f"the write probe could not write: {writes.report.last_error}")
        record = act()
        recovered = writes.wait_for_recovery(timeout=60)
        acked_after = len(writes.report.acked) + 10
        writes.wait_for_writes(acked_after, timeout=30)
    finally:
        report = writes.stop()
    if report.first_failure_at is None:
        rto = timedelta(0)  # the probe never saw an outage
    elif recovered and report.first_success_after_failure_at is not None:
        rto = report.first_success_after_failure_at - report.first_failure_at
    else:
        rto = timedelta(seconds=60)
    lost = missing_acknowledged(new_primary(record), report.acked)
    return (
        DrillResult(
            kind=kind,
            database=database,
            finished_at=datetime.now(UTC),
            measured_rto=rto,
            lost_acknowledged_writes=len(lost),
            acknowledged_writes=len(report.acked),
            rto_target=rto_target,
            rpo_target=rpo_target,
        ),
        record,
    )


def switchover_drill(
    *,
    database: str,
    primary: Node,
    standby: Node,
    control: NodeControl,
    rto_target: timedelta,
    rpo_target: timedelta,
    warmup_writes: int = 50,
) -> tuple[DrillResult, SwitchoverRecord]:
    """Switchover under the write probe; the RTO is the outage the probe saw."""
    return drill_under_probe(
        kind="switchover",
        database=database,
        nodes=[primary, standby],
        act=lambda: switchover(primary=primary, standby=standby, control=control),
        new_primary=lambda _record: standby,
        rto_target=rto_target,
        rpo_target=rpo_target,
        warmup_writes=warmup_writes,
    )
