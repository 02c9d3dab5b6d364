"""Automatic failover as a background service of the control plane, behind the action gate.

The service watches whichever node is the writable primary. When it fails ``threshold``
consecutive probes, the engine decides ``failover_database`` (kill switch, policy, cooldown, rate
budget, leader lease, mode — and one decision per failure, however many replicas saw it); only a
taken decision runs the failover (choose → fence → promote), whose record becomes the outcome.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from controlplane.actions.engine import ActionEngine
from controlplane.failover.fencing import Fencer
from controlplane.failover.nodes import Node, NodeUnreachable, probe
from controlplane.failover.run import FailoverAborted, fail_over, watch_primary
from controlplane.store.actions import merge_evidence
from controlplane.store.audit import StoredAuditEntry, record_outcome

logger = logging.getLogger(__name__)


class FailoverService:
    def __init__(
        self,
        *,
        engine: ActionEngine,
        nodes: Sequence[Node],
        fencer: Fencer,
        rpo: timedelta,
        database: str,
        interval: float = 0.25,
        threshold: int = 3,
    ) -> None:
        self.engine = engine
        self.nodes = list(nodes)
        self.fencer = fencer
        self.rpo = rpo
        self.database = database
        self.interval = interval
        self.threshold = threshold
        self.decisions: list[StoredAuditEntry] = []
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="failover-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def pause(self) -> None:
        """A planned operation stops the primary on purpose: no failover until :meth:`resume`."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def primary(self) -> Node | None:
        for node in self.nodes:
            try:
                if not probe(node, timeout=1).in_recovery:
                    return node
            except NodeUnreachable:
                continue
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            primary = self.primary()
            if primary is None:
                self._stop.wait(1.0)
                continue
            detection = watch_primary(
                primary, interval=self.interval, threshold=self.threshold, stop=self._stop
            )
            if detection is None:
                continue
            if self._paused.is_set():
                logger.info("%s unreachable during a planned operation: no failover", primary.name)
                self._stop.wait(1.0)
                continue
            entry = self.engine.decide(
                "failover_database",
                self.database,
                trigger_key=f"failover:{primary.name}:{detection.first_failed_at.isoformat()}",
                trigger=f"{detection.failed_probes} failed probes of {primary.name}",
                evidence={
                    "service": self.database,
                    "primary": primary.name,
                    "first_failed_at": detection.first_failed_at.isoformat(),
                    "detected_at": detection.detected_at.isoformat(),
                    "last_error": detection.last_error,
                    "last_primary_lsn": detection.last_primary_lsn,
                },
            )
            if entry is None or entry.decision != "taken" or entry.dry_run:
                if entry is not None:
                    self.decisions.append(entry)
                self._stop.wait(1.0)  # refused or dry-run: watch again; nothing was changed
                continue
            standbys = [n for n in self.nodes if n != primary]
            try:
                record = fail_over(detection, standbys=standbys, fencer=self.fencer, rpo=self.rpo)
                outcome = "succeeded" if record.promoted else "refused"
                detail = (
                    f"promoted {record.candidate}"
                    if record.promoted
                    else f"not promoted: {record.refused}"
                )
                evidence = {"failover": record.evidence()}
            except FailoverAborted as exc:
                outcome, detail, evidence = "failed", str(exc), {"failover": {"error": str(exc)}}
            with self.engine.database.writer() as session:
                merge_evidence(session, decision_id=entry.decision_id, extra=evidence)
                final = record_outcome(
                    session,
                    decision_id=entry.decision_id,
                    outcome=outcome,
                    at=datetime.now(UTC),
                    detail=detail,
                )
            self.decisions.append(final or entry)
            logger.warning("failover of %s: %s (%s)", primary.name, outcome, detail)
