"""The scheduled DR drill: a switchover under a write probe, run by the control plane itself.

When the newest stored drill of the database is older than the interval
(``CONTROLPLANE_DRILL_INTERVAL_HOURS``; 0 turns the schedule off), the leader decides
``run_drill`` through the gate (kill switch, policy, cooldown, budget, lease, mode — one decision
per due period), and a taken decision runs the switchover: the primary is stopped cleanly, the
standby promoted, the old primary restarted as its follower, while a numbered write probe
measures the outage a client sees and the acknowledged writes lost. Automatic failover is paused
meanwhile (the planned stop is not a failure). The drill is stored like ``controlplane drill``'s,
so the DR checks and the console see it, and its figures become the decision's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controlplane.actions.database import FailoverService
from controlplane.actions.engine import ActionEngine
from controlplane.failover.local import LocalNodeControl, LocalPostgres
from controlplane.failover.nodes import Node, NodeUnreachable, probe
from controlplane.failover.switchover import DrillResult, SwitchoverAborted, switchover_drill
from controlplane.store.actions import merge_evidence
from controlplane.store.audit import StoredAuditEntry, record_outcome
from controlplane.store.drills import NewDrill, list_drills, record_drill

logger = logging.getLogger(__name__)


def local_node_control(nodes: Sequence[Node], data_dirs: Mapping[str, Path]) -> LocalNodeControl:
    """Node control over PostgreSQL servers whose data folders this machine holds."""
    return LocalNodeControl(
        {node.name: LocalPostgres(node=node.name, data_dir=data_dirs[node.name]) for node in nodes}
    )


def switchover_drill_record(
    result: DrillResult, *, started: datetime, details: dict[str, Any]
) -> NewDrill:
    """What the store keeps of a switchover drill (the RPO is 0 only if no write was lost)."""
    return NewDrill(
        database=result.database,
        kind="switchover",
        started_at=started,
        finished_at=result.finished_at,
        succeeded=result.succeeded,
        measured_rto_s=result.measured_rto.total_seconds(),
        measured_rpo_s=0.0 if result.lost_acknowledged_writes == 0 else None,
        lost_acknowledged_writes=result.lost_acknowledged_writes,
        acknowledged_writes=result.acknowledged_writes,
        details=details,
    )


class ScheduledDrill:
    def __init__(
        self,
        *,
        engine: ActionEngine,
        nodes: Sequence[Node],
        control: LocalNodeControl,
        database: str,
        interval: timedelta,
        rto_target: timedelta,
        rpo_target: timedelta,
        failover: FailoverService | None = None,
    ) -> None:
        self.engine = engine
        self.nodes = list(nodes)
        self.control = control
        self.database = database
        self.interval = interval
        self.rto_target = rto_target
        self.rpo_target = rpo_target
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

    def due(self, now: datetime) -> tuple[bool, datetime | None]:
        """Whether a drill is due, and when the newest stored one finished."""
        with self.engine.database.reader() as session:
            newest = list_drills(session, database=self.database, limit=1)
        last = newest[0].finished_at if newest else None
        return last is None or now - last >= self.interval, last

    def run_if_due(self, *, now: datetime | None = None) -> StoredAuditEntry | None:
        """Decide and (if the gate says so) run the drill; None when nothing was due."""
        moment = now or datetime.now(UTC)
        due, last = self.due(moment)
        if not due:
            return None
        primary, standby = self._roles()
        slot = int(moment.timestamp() // self.interval.total_seconds())
        entry = self.engine.decide(
            "run_drill",
            self.database,
            trigger_key=f"drill:{self.database}:{slot}",
            trigger=f"scheduled switchover drill (last {last.isoformat() if last else 'never'})",
            evidence={
                "service": self.database,
                "kind": "switchover",
                "last_drill_at": None if last is None else last.isoformat(),
                "interval_s": self.interval.total_seconds(),
                "primary": None if primary is None else primary.name,
                "standby": None if standby is None else standby.name,
            },
        )
        if entry is None or entry.decision != "taken" or entry.dry_run:
            return entry
        if primary is None or standby is None:
            return self._finish(entry, "failed", "need a writable primary and a standby", {})
        if self.failover is not None:
            self.failover.pause()
        started = datetime.now(UTC)
        try:
            result, record = switchover_drill(
                database=self.database,
                primary=primary,
                standby=standby,
                control=self.control,
                rto_target=self.rto_target,
                rpo_target=self.rpo_target,
            )
        except (SwitchoverAborted, NodeUnreachable) as exc:
            return self._finish(entry, "failed", f"switchover aborted: {exc}", {})
        finally:
            if self.failover is not None:
                self.failover.resume()
        drill = switchover_drill_record(
            result,
            started=started,
            details={
                "decision_id": entry.decision_id,
                "old_primary": record.old_primary,
                "new_primary": record.new_primary,
                "old_primary_following": record.old_primary_following,
            },
        )
        with self.engine.database.writer() as session:
            record_drill(session, drill=drill)
        figures = {
            "measured_rto_s": drill.measured_rto_s,
            "rto_target_s": self.rto_target.total_seconds(),
            "lost_acknowledged_writes": drill.lost_acknowledged_writes,
            "acknowledged_writes": drill.acknowledged_writes,
            "new_primary": record.new_primary,
        }
        detail = (
            f"switchover {record.old_primary} → {record.new_primary}: RTO "
            f"{drill.measured_rto_s:.2f} s (target {self.rto_target}), "
            f"{drill.lost_acknowledged_writes} of {drill.acknowledged_writes} writes lost"
        )
        return self._finish(entry, "succeeded" if drill.succeeded else "failed", detail, figures)

    def _finish(
        self, entry: StoredAuditEntry, outcome: str, detail: str, figures: dict[str, Any]
    ) -> StoredAuditEntry:
        with self.engine.database.writer() as session:
            if figures:
                merge_evidence(session, decision_id=entry.decision_id, extra={"drill": figures})
            final = record_outcome(
                session,
                decision_id=entry.decision_id,
                outcome=outcome,
                at=datetime.now(UTC),
                detail=detail,
            )
        logger.warning("scheduled drill of %s: %s (%s)", self.database, outcome, detail)
        return final or entry
