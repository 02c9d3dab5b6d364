"""What the store keeps of a backup and of a restore (``store/backups.py`` models)."""

from __future__ import annotations

from datetime import datetime

from controlplane.backups.pgbackrest import BackupType, InfoBackup
from controlplane.backups.validation import RestoreRun
from controlplane.store.backups import CheckRecord, NewBackup, NewRestoreRun

__all__ = ["backup_record", "failed_backup_record", "restore_record"]


def backup_record(
    backup: InfoBackup,
    *,
    database: str,
    stanza: str,
    requested: BackupType,
    decision_id: str | None = None,
) -> NewBackup:
    """A backup set as pgBackRest describes it (its own start and stop times)."""
    return NewBackup(
        database=database,
        stanza=stanza,
        label=backup.label,
        type=backup.type,
        requested_type=requested,
        started_at=backup.started_at,
        finished_at=backup.stopped_at,
        duration_s=float(backup.timestamp.stop - backup.timestamp.start),
        succeeded=not backup.error,
        size_bytes=backup.info.size,
        delta_bytes=backup.info.delta,
        repo_size_bytes=backup.info.repository.size,
        repo_delta_bytes=backup.info.repository.delta,
        wal_start=backup.archive.start,
        wal_stop=backup.archive.stop,
        lsn_start=backup.lsn.start,
        lsn_stop=backup.lsn.stop,
        prior=backup.prior,
        error="pgBackRest marks this backup as having errors" if backup.error else None,
        decision_id=decision_id,
    )


def failed_backup_record(
    *,
    database: str,
    stanza: str,
    requested: BackupType,
    started_at: datetime,
    finished_at: datetime,
    error: str,
    decision_id: str | None = None,
) -> NewBackup:
    return NewBackup(
        database=database,
        stanza=stanza,
        type=requested,
        requested_type=requested,
        started_at=started_at,
        finished_at=finished_at,
        duration_s=max(0.0, (finished_at - started_at).total_seconds()),
        succeeded=False,
        error=error,
        decision_id=decision_id,
    )


def restore_record(run: RestoreRun, *, database: str, run_id: str) -> NewRestoreRun:
    return NewRestoreRun(
        database=database,
        kind=run.kind,
        run_id=run_id,
        target=run.target,
        started_at=run.started_at,
        finished_at=run.finished_at,
        succeeded=run.succeeded,
        backup_set=run.backup_set,
        duration_s=run.duration_s,
        restore_s=run.restore_s,
        recovery_s=run.recovery_s,
        validation_s=run.validation_s,
        reached_at=run.reached_at,
        target_at=run.target_at,
        error=run.error,
        checks=[
            CheckRecord(
                name=check.name, expected=check.expected, actual=check.actual, passed=check.passed
            )
            for check in run.checks
        ],
        details={**run.details, "pitr_error_s": run.pitr_error_s},
    )
