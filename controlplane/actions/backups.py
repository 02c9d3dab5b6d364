"""Scheduled backups and restore validations, run by the control plane through the action gate.

* Backups (action ``backup``): a full backup when the newest successful full one is older than
  the DR policy's ``full_every`` (or there is none), else a differential one when the newest
  successful backup is older than ``differential_every``. Each is taken with pgBackRest and
  stored as pgBackRest describes it (type, start / stop, sizes, WAL range, LSNs); a failure is
  stored with pgBackRest's message.
* Restore validations (action ``validate_restore``): when no restore was validated within the
  policy's ``restore_validation_every`` (and a backup exists), the newest backup and a point
  in time are restored into a scratch server and checked (``controlplane/backups/
  validation.py``); each restore is stored with its duration, the point it reached and its
  checks, under the decision's id.

Each decision passes the gate (kill switch, policy, cooldown, budget, lease, mode) — one per
due period (the trigger key), however many replicas or ticks see it due — and its outcome,
with the figures, is written to its audit entry. Only the leader runs them (the caller's job
checks), in the scheduler's thread: a backup of the configured database never runs twice at
once. They are not engine executors (``ActionEngine.register_executor``): an executor runs under
the engine's lock, and a backup or a restore takes minutes that scaling decisions must not wait
for; the engine marks the decision ``handed-off`` and the schedule writes the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.actions.engine import ActionEngine
from controlplane.backups.backup import take_backup
from controlplane.backups.errors import BackupError
from controlplane.backups.pgbackrest import BackupType, PgBackRest
from controlplane.backups.records import backup_record, failed_backup_record, restore_record
from controlplane.backups.validation import RestoreRun, ValidationSettings, validate_restores
from controlplane.core.errors import ControlPlaneError
from controlplane.store.actions import merge_evidence
from controlplane.store.audit import StoredAuditEntry, record_outcome
from controlplane.store.backups import (
    StoredBackup,
    list_backups,
    list_restore_runs,
    record_backup,
    record_restore_run,
)

__all__ = ["RETRY_EVERY", "BackupCadence", "BackupSchedule", "restore_summary"]

logger = logging.getLogger(__name__)

#: A due backup or validation is decided again at most this often (a refused or failed one is
#: tried again after it; the gate's cooldown still applies).
RETRY_EVERY = timedelta(minutes=15)
MB = 1024 * 1024

#: The DSN of the database's current primary (raises ControlPlaneError when there is none).
PrimaryDsn = Callable[[], str]


@dataclass(frozen=True, kw_only=True)
class BackupCadence:
    full_every: timedelta
    differential_every: timedelta
    validation_every: timedelta


def _slot(now: datetime, every: timedelta) -> int:
    period = min(every, RETRY_EVERY).total_seconds()
    return int(now.timestamp() // max(period, 1.0))


class BackupSchedule:
    def __init__(
        self,
        *,
        engine: ActionEngine,
        pgbackrest: PgBackRest,
        database: str,
        cadence: BackupCadence,
        primary: PrimaryDsn,
        validation: ValidationSettings,
        backup_timeout: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.pgbackrest = pgbackrest
        self.database = database
        self.cadence = cadence
        self.primary = primary
        self.validation = validation
        self.backup_timeout = backup_timeout
        self.clock = clock

    # -- backups --------------------------------------------------------------------------------
    def _newest(self) -> tuple[StoredBackup | None, StoredBackup | None]:
        """The newest successful full backup, and the newest successful backup of any type."""
        with self.engine.database.reader() as session:
            full = list_backups(
                session, database=self.database, succeeded=True, backup_type="full", limit=1
            )
            any_type = list_backups(session, database=self.database, succeeded=True, limit=1)
        return (full[0] if full else None), (any_type[0] if any_type else None)

    def backup_due(self, now: datetime) -> BackupType | None:
        full, newest = self._newest()
        if full is None or now - full.finished_at >= self.cadence.full_every:
            return "full"
        if newest is None or now - newest.finished_at >= self.cadence.differential_every:
            return "diff"
        return None

    def run_backup_if_due(self, *, now: datetime | None = None) -> StoredAuditEntry | None:
        """Decide and (if the gate says so) take the due backup; None when none is due."""
        moment = now or self.clock()
        backup_type = self.backup_due(moment)
        if backup_type is None:
            return None
        full, newest = self._newest()
        every = (
            self.cadence.full_every if backup_type == "full" else self.cadence.differential_every
        )
        entry = self.engine.decide(
            "backup",
            self.database,
            trigger_key=f"backup:{self.database}:{backup_type}:{_slot(moment, every)}",
            trigger=f"scheduled {backup_type} backup (every {every.total_seconds():.0f} s)",
            evidence={
                "service": self.database,
                "type": backup_type,
                "stanza": self.pgbackrest.stanza,
                "every_s": every.total_seconds(),
                "last_full_at": None if full is None else full.finished_at.isoformat(),
                "last_backup_at": None if newest is None else newest.finished_at.isoformat(),
            },
        )
        if entry is None or entry.decision != "taken" or entry.dry_run:
            return entry
        return self.backup_now(backup_type, decision_id=entry.decision_id, entry=entry)

    def backup_now(
        self,
        backup_type: BackupType,
        *,
        decision_id: str | None = None,
        entry: StoredAuditEntry | None = None,
    ) -> StoredAuditEntry | None:
        """Take a backup, store it, and write the outcome into the decision's audit entry."""
        started = self.clock()
        try:
            made = take_backup(
                self.pgbackrest, backup_type=backup_type, timeout=self.backup_timeout
            )
        except BackupError as exc:
            record = failed_backup_record(
                database=self.database,
                stanza=self.pgbackrest.stanza,
                requested=backup_type,
                started_at=started,
                finished_at=self.clock(),
                error=str(exc),
                decision_id=decision_id,
            )
            outcome, detail = "failed", f"{backup_type} backup failed: {exc}"
        else:
            record = backup_record(
                made,
                database=self.database,
                stanza=self.pgbackrest.stanza,
                requested=backup_type,
                decision_id=decision_id,
            )
            outcome = "succeeded" if record.succeeded else "failed"
            detail = (
                f"{record.type} backup {record.label}: {(record.size_bytes or 0) / MB:.1f} MB "
                f"({(record.repo_delta_bytes or 0) / MB:.1f} MB stored) in "
                f"{record.duration_s:.0f} s, WAL {record.wal_start} – {record.wal_stop}"
            )
        with self.engine.database.writer() as session:
            stored = record_backup(session, backup=record)
        logger.info("%s backup of %s: %s (%s)", backup_type, self.database, outcome, detail)
        figures = stored.model_dump(mode="json", exclude={"details", "database", "stanza"})
        return self._finish(entry, outcome, detail, {"backup": figures})

    # -- restore validations --------------------------------------------------------------------
    def validation_due(self, now: datetime) -> tuple[bool, datetime | None]:
        """Whether a validation is due (a backup exists and no restore succeeded within the
        cadence), and when the newest successful restore finished."""
        with self.engine.database.reader() as session:
            runs = list_restore_runs(session, database=self.database, limit=50)
            backups = list_backups(session, database=self.database, succeeded=True, limit=1)
        good = [run.finished_at for run in runs if run.succeeded]
        last = max(good, default=None)
        if not backups:
            return False, last
        return last is None or now - last >= self.cadence.validation_every, last

    def run_validation_if_due(self, *, now: datetime | None = None) -> StoredAuditEntry | None:
        moment = now or self.clock()
        due, last = self.validation_due(moment)
        if not due:
            return None
        every = self.cadence.validation_every
        entry = self.engine.decide(
            "validate_restore",
            self.database,
            trigger_key=f"validate_restore:{self.database}:{_slot(moment, every)}",
            trigger=f"scheduled restore validation (last {last.isoformat() if last else 'never'})",
            evidence={
                "service": self.database,
                "every_s": every.total_seconds(),
                "last_validation_at": None if last is None else last.isoformat(),
            },
        )
        if entry is None or entry.decision != "taken" or entry.dry_run:
            return entry
        runs = self.validate_now(run_id=entry.decision_id)
        failed = [run for run in runs if not run.succeeded]
        detail = restore_summary(runs)
        figures = [
            {
                "kind": run.kind,
                "succeeded": run.succeeded,
                "duration_s": run.duration_s,
                "backup_set": run.backup_set,
                "pitr_error_s": run.pitr_error_s,
                "error": run.error,
            }
            for run in runs
        ]
        return self._finish(
            entry, "failed" if failed else "succeeded", detail, {"restores": figures}
        )

    def validate_now(self, *, run_id: str) -> list[RestoreRun]:
        """Validate both restores now and store them under ``run_id``."""
        try:
            source = self.primary()
        except ControlPlaneError as exc:
            started = self.clock()
            runs = [
                RestoreRun(
                    kind=kind,
                    target="not reached: no source",
                    started_at=started,
                    finished_at=started,
                    succeeded=False,
                    error=f"no primary to take the restore point on: {exc}",
                )
                for kind in ("backup", "point_in_time")
            ]
        else:
            runs = validate_restores(self.pgbackrest, source_dsn=source, settings=self.validation)
        with self.engine.database.writer() as session:
            for run in runs:
                record_restore_run(
                    session, run=restore_record(run, database=self.database, run_id=run_id)
                )
        for run in runs:
            log = logger.info if run.succeeded else logger.warning
            log("restore validation of %s: %s", self.database, _describe(run))
        return runs

    def _finish(
        self,
        entry: StoredAuditEntry | None,
        outcome: str,
        detail: str,
        figures: dict[str, Any],
    ) -> StoredAuditEntry | None:
        if entry is None:
            return None
        with self.engine.database.writer() as session:
            merge_evidence(session, decision_id=entry.decision_id, extra=figures)
            final = record_outcome(
                session,
                decision_id=entry.decision_id,
                outcome=outcome,
                at=self.clock(),
                detail=detail,
            )
        return final or entry


def _describe(run: RestoreRun) -> str:
    what = run.kind.replace("_", " ")
    if not run.succeeded:
        return f"{what}: failed: {run.error}"
    checks = len(run.checks)
    return f"{what}: {run.backup_set} up in {run.duration_s or 0:.1f} s, {checks} checks passed" + (
        ""
        if run.pitr_error_s is None
        else f", last commit {run.pitr_error_s:.3f} s before the target"
    )


def restore_summary(runs: Sequence[RestoreRun]) -> str:
    """One line per validation: each restore's outcome and figures."""
    return "; ".join(_describe(run) for run in runs)
