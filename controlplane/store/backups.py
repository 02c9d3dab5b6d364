"""Backups and restore validations: what pgBackRest made and what each restore showed, for the
DR checks, the API and the console."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.core.validation import IsoDateTime, refuse_nul
from controlplane.store.models import BackupRun, RestoreValidationRun

__all__ = [
    "NewBackup",
    "NewRestoreRun",
    "StoredBackup",
    "StoredRestoreRun",
    "list_backups",
    "list_restore_runs",
    "record_backup",
    "record_restore_run",
]

BackupKind = Literal["full", "diff", "incr"]


class NewBackup(BaseModel):
    """A backup taken (or tried): pgBackRest's own start / stop, sizes and WAL range."""

    model_config = ConfigDict(frozen=True)

    database: str = Field(min_length=1, max_length=200)
    stanza: str = Field(min_length=1, max_length=200)
    label: str | None = Field(default=None, max_length=100)
    type: BackupKind
    requested_type: BackupKind
    started_at: AwareDatetime
    finished_at: AwareDatetime
    duration_s: float = Field(ge=0)
    succeeded: bool
    size_bytes: int | None = Field(default=None, ge=0)
    delta_bytes: int | None = Field(default=None, ge=0)
    repo_size_bytes: int | None = Field(default=None, ge=0)
    repo_delta_bytes: int | None = Field(default=None, ge=0)
    wal_start: str | None = None
    wal_stop: str | None = None
    lsn_start: str | None = None
    lsn_stop: str | None = None
    prior: str | None = None
    error: str | None = None
    decision_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class StoredBackup(NewBackup):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int


class CheckRecord(BaseModel):
    """One check of a restored copy: what the source had, what the copy gave."""

    model_config = ConfigDict(frozen=True)

    name: str
    expected: Any = None
    actual: Any = None
    passed: bool


class NewRestoreRun(BaseModel):
    """One restore of a validation, with its timings, the point it reached and its checks."""

    model_config = ConfigDict(frozen=True)

    database: str = Field(min_length=1, max_length=200)
    kind: Literal["backup", "point_in_time"]
    run_id: str = Field(min_length=1, max_length=64)
    target: str
    started_at: IsoDateTime
    finished_at: IsoDateTime
    succeeded: bool
    backup_set: str | None = Field(default=None, max_length=100)
    duration_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    restore_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    recovery_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    validation_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    reached_at: IsoDateTime | None = None
    target_at: IsoDateTime | None = None
    error: str | None = None
    checks: list[CheckRecord] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _storable(self) -> NewRestoreRun:
        refuse_nul(self.model_dump(mode="json"))
        if self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        return self


class StoredRestoreRun(NewRestoreRun):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int


def record_backup(session: Session, *, backup: NewBackup) -> StoredBackup:
    row = BackupRun(**backup.model_dump())
    session.add(row)
    session.flush()
    return StoredBackup.model_validate(row)


def list_backups(
    session: Session,
    *,
    database: str | None = None,
    succeeded: bool | None = None,
    backup_type: BackupKind | None = None,
    limit: int = 100,
) -> list[StoredBackup]:
    """Newest first."""
    statement = select(BackupRun)
    if backup_type is not None:
        statement = statement.where(BackupRun.type == backup_type)
    if database is not None:
        statement = statement.where(BackupRun.database == database)
    if succeeded is not None:
        statement = statement.where(BackupRun.succeeded.is_(succeeded))
    statement = statement.order_by(BackupRun.finished_at.desc(), BackupRun.id.desc()).limit(limit)
    return [StoredBackup.model_validate(row) for row in session.scalars(statement)]


def record_restore_run(session: Session, *, run: NewRestoreRun) -> StoredRestoreRun:
    values = run.model_dump(exclude={"checks", "details"})
    details = {**run.details, "checks": [check.model_dump(mode="json") for check in run.checks]}
    row = RestoreValidationRun(**values, details=details)
    session.add(row)
    session.flush()
    return _restore_run(row)


def _restore_run(row: RestoreValidationRun) -> StoredRestoreRun:
    details = dict(row.details or {})
    checks = details.pop("checks", [])
    return StoredRestoreRun(
        id=row.id,
        database=row.database,
        kind=row.kind or "backup",  # type: ignore[arg-type]
        run_id=row.run_id or f"restore-{row.id}",
        target=row.target or "",
        started_at=row.started_at or row.finished_at,
        finished_at=row.finished_at,
        succeeded=row.succeeded,
        backup_set=row.backup_set,
        duration_s=row.duration_s,
        restore_s=row.restore_s,
        recovery_s=row.recovery_s,
        validation_s=row.validation_s,
        reached_at=row.reached_at,
        target_at=row.target_at,
        error=row.error,
        checks=[CheckRecord.model_validate(check) for check in checks],
        details=details,
    )


def list_restore_runs(
    session: Session, *, database: str | None = None, limit: int = 100
) -> list[StoredRestoreRun]:
    """Every restore validation, newest first (those recorded before restores had kinds come
    back as ``backup`` restores with what they recorded)."""
    statement = select(RestoreValidationRun)
    if database is not None:
        statement = statement.where(RestoreValidationRun.database == database)
    statement = statement.order_by(
        RestoreValidationRun.finished_at.desc(), RestoreValidationRun.id.desc()
    ).limit(limit)
    return [_restore_run(row) for row in session.scalars(statement)]
