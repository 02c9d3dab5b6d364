"""DR drills run by the control plane itself: a switchover (or a failover) under a write probe.

When the newest stored drill of the database is older than the interval
(``CONTROLPLANE_DRILL_INTERVAL_HOURS``; 0 turns the schedule off), the leader decides
``run_drill`` through the gate (kill switch, policy, cooldown, budget, lease, mode — one decision
per due period); an operator may ask for one at any time (:meth:`ScheduledDrill.run_now`, the
API's ``POST /api/v1/dr/drills/run``), through the same gate. A taken (or approved) decision
runs the drill — the engine's executor for ``run_drill`` — while a numbered write probe
measures the outage a client sees and the acknowledged writes lost. The drill is stored like
``controlplane drill``'s, so the DR checks and the console see it, and its figures become the
decision's outcome.

How the primary role moves is a :class:`DrillRunner`'s: :class:`LocalDrillRunner` stops the
primary cleanly, promotes the standby and restarts the old primary as its follower (automatic
failover paused meanwhile); the Patroni runner (``actions/patroni.py``) asks Patroni.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from controlplane.actions.database import FailoverService
from controlplane.actions.engine import ActionEngine, Execution
from controlplane.core.errors import ControlPlaneError
from controlplane.failover.local import LocalNodeControl, LocalPostgres
from controlplane.failover.nodes import Node, NodeUnreachable, probe
from controlplane.failover.switchover import DrillResult, SwitchoverAborted, switchover_drill
from controlplane.store.audit import StoredAuditEntry
from controlplane.store.drills import NewDrill, list_drills, record_drill

__all__ = [
    "DrillKind",
    "DrillRunner",
    "LocalDrillRunner",
    "ScheduledDrill",
    "drill_record",
    "local_node_control",
]

logger = logging.getLogger(__name__)

DrillKind = Literal["switchover", "failover"]


class DrillRunner(Protocol):
    """Moves the primary role under the write probe and measures it."""

    #: The kinds of drill this runner can run.
    kinds: frozenset[DrillKind]

    def roles(self) -> tuple[str | None, str | None]:
        """The primary and the standby a drill would start from now (None: none found)."""

    def run(
        self, *, kind: DrillKind, database: str, rto_target: timedelta, rpo_target: timedelta
    ) -> tuple[DrillResult, dict[str, Any]]:
        """Run the drill; its measured result and what happened (old / new primary ...).
        Raises a ControlPlaneError when it could not run (nothing was promoted)."""


def local_node_control(nodes: Sequence[Node], data_dirs: Mapping[str, Path]) -> LocalNodeControl:
    """Node control over PostgreSQL servers whose data folders this machine holds."""
    return LocalNodeControl(
        {node.name: LocalPostgres(node=node.name, data_dir=data_dirs[node.name]) for node in nodes}
    )


def drill_record(result: DrillResult, *, started: datetime, details: dict[str, Any]) -> NewDrill:
    """What the store keeps of a drill (the RPO is 0 only if no write was lost)."""
    return NewDrill(
        database=result.database,
        kind=result.kind,
        started_at=started,
        finished_at=result.finished_at,
        succeeded=result.succeeded,
        measured_rto_s=result.measured_rto.total_seconds(),
        measured_rpo_s=0.0 if result.lost_acknowledged_writes == 0 else None,
        lost_acknowledged_writes=result.lost_acknowledged_writes,
        acknowledged_writes=result.acknowledged_writes,
        details=details,
    )


class LocalDrillRunner:
    """Switchover of PostgreSQL servers whose data folders this machine holds."""

    kinds: frozenset[DrillKind] = frozenset({"switchover"})

    def __init__(
        self,
        *,
        nodes: Sequence[Node],
        control: LocalNodeControl,
        failover: FailoverService | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.control = control
        self.failover = failover

    def _roles(self) -> tuple[Node | None, Node | None]:
        primary = standby = None
        for node in self.nodes:
            try:
                status = probe(node, timeout=2)
            except NodeUnreachable:
                continue
            if status.in_recovery:
                standby = standby or node
            else:
                primary = primary or node
        return primary, standby

    def roles(self) -> tuple[str | None, str | None]:
        primary, standby = self._roles()
        return (
            None if primary is None else primary.name,
            None if standby is None else standby.name,
        )

    def run(
        self, *, kind: DrillKind, database: str, rto_target: timedelta, rpo_target: timedelta
    ) -> tuple[DrillResult, dict[str, Any]]:
        if kind not in self.kinds:
            raise SwitchoverAborted(f"the local driver runs switchover drills only, not {kind}")
        primary, standby = self._roles()
        if primary is None or standby is None:
            raise SwitchoverAborted("need a writable primary and a standby")
        if self.failover is not None:
            self.failover.pause()  # the planned stop is not a failure
        try:
            result, record = switchover_drill(
                database=database,
                primary=primary,
                standby=standby,
                control=self.control,
                rto_target=rto_target,
                rpo_target=rpo_target,
            )
        finally:
            if self.failover is not None:
                self.failover.resume()
        return result, {
            "old_primary": record.old_primary,
            "new_primary": record.new_primary,
            "old_primary_following": record.old_primary_following,
        }


class ScheduledDrill:
    """Decides drills through the gate (on schedule or for an operator) and runs taken ones."""

    def __init__(
        self,
        *,
        engine: ActionEngine,
        runner: DrillRunner,
        database: str,
        interval: timedelta | None,
        rto_target: timedelta,
        rpo_target: timedelta,
    ) -> None:
        """``interval`` None: no schedule, drills on request only."""
        self.engine = engine
        self.runner = runner
        self.database = database
        self.interval = interval
        self.rto_target = rto_target
        self.rpo_target = rpo_target
        engine.register_executor("run_drill", self.execute)

    def last_drill(self) -> datetime | None:
        with self.engine.database.reader() as session:
            newest = list_drills(session, database=self.database, limit=1)
        return newest[0].finished_at if newest else None

    def due(self, now: datetime) -> tuple[bool, datetime | None]:
        """Whether a drill is due, and when the newest stored one finished."""
        last = self.last_drill()
        if self.interval is None:
            return False, last
        return last is None or now - last >= self.interval, last

    def _evidence(self, kind: DrillKind, last: datetime | None) -> dict[str, Any]:
        primary, standby = self.runner.roles()
        return {
            "service": self.database,
            "kind": kind,
            "last_drill_at": None if last is None else last.isoformat(),
            "interval_s": None if self.interval is None else self.interval.total_seconds(),
            "primary": primary,
            "standby": standby,
        }

    def run_if_due(self, *, now: datetime | None = None) -> StoredAuditEntry | None:
        """Decide (and, if the gate says so, run) the scheduled drill; None when nothing was
        due (or the period's drill was decided already)."""
        moment = now or datetime.now(UTC)
        due, last = self.due(moment)
        if not due or self.interval is None:
            return None
        slot = int(moment.timestamp() // self.interval.total_seconds())
        return self.engine.decide(
            "run_drill",
            self.database,
            trigger_key=f"drill:{self.database}:{slot}",
            trigger=f"scheduled switchover drill (last {last.isoformat() if last else 'never'})",
            evidence=self._evidence("switchover", last),
        )

    def run_now(self, *, kind: DrillKind, actor: str, force: bool = False) -> StoredAuditEntry:
        """An operator's drill, through the same gate (cooldown and budget included)."""
        if kind not in self.runner.kinds:
            raise SwitchoverAborted(f"this failover driver cannot run a {kind} drill")
        entry = self.engine.decide(
            "run_drill",
            self.database,
            trigger_key=None,
            trigger=f"{kind} drill asked for by {actor}",
            evidence={**self._evidence(kind, self.last_drill()), "force": force},
            actor=actor,
        )
        assert entry is not None  # no trigger key: never a duplicate
        return entry

    def execute(self, entry: StoredAuditEntry) -> Execution:
        """The engine's executor for ``run_drill``: run, store, report the figures."""
        kind: DrillKind = "failover" if entry.evidence.get("kind") == "failover" else "switchover"
        started = datetime.now(UTC)
        try:
            result, details = self.runner.run(
                kind=kind,
                database=self.database,
                rto_target=self.rto_target,
                rpo_target=self.rpo_target,
            )
        except ControlPlaneError as exc:
            logger.warning("drill of %s not run: %s", self.database, exc)
            return Execution(outcome="failed", detail=f"{kind} aborted: {exc}")
        drill = drill_record(
            result, started=started, details={"decision_id": entry.decision_id, **details}
        )
        with self.engine.database.writer() as session:
            record_drill(session, drill=drill)
        figures = {
            "measured_rto_s": drill.measured_rto_s,
            "rto_target_s": self.rto_target.total_seconds(),
            "lost_acknowledged_writes": drill.lost_acknowledged_writes,
            "acknowledged_writes": drill.acknowledged_writes,
            "new_primary": details.get("new_primary"),
        }
        detail = (
            f"{kind} {details.get('old_primary')} → {details.get('new_primary')}: RTO "
            f"{drill.measured_rto_s:.2f} s (target {self.rto_target}), "
            f"{drill.lost_acknowledged_writes} of {drill.acknowledged_writes} writes lost"
        )
        logger.warning("drill of %s: %s", self.database, detail)
        return Execution(
            outcome="succeeded" if drill.succeeded else "failed",
            detail=detail,
            evidence={"drill": figures},
        )
