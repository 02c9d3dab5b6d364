"""Backups, restore validations and WAL archiving of the DR policy's databases.

``GET /dr/backups`` and ``GET /dr/restore-validations`` serve what the store holds (each backup
as pgBackRest described it; each restore with its duration, the point it reached and its
checks), newest first; ``POST /dr/restore-validations`` stores a restore validated elsewhere
(``controlplane drill restore``; operator). ``GET /dr/archive`` reads the current primary's
archiving live (the newest archived WAL against its current LSN, against the tier's RPO).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.concurrency import run_in_threadpool

from controlplane.api.deps import CurrentOperator, ReaderDep, SettingsDep, WriterDep
from controlplane.backups.archive import ArchiveReport
from controlplane.backups.errors import ArchiveReadError
from controlplane.core.config import ControlPlaneSettings
from controlplane.core.validation import NO_NUL
from controlplane.evaluation.service import archive_reader
from controlplane.store.backups import (
    NewRestoreRun,
    StoredBackup,
    StoredRestoreRun,
    list_backups,
    list_restore_runs,
    record_restore_run,
)
from controlplane.targets.policy import load_dr_policy
from controlplane.targets.reconcile import locate_primary
from controlplane.targets.replication import ReplicationReadError

router = APIRouter(tags=["backups"])

__all__ = ["read_archive_view", "router"]


def read_archive_view(
    settings: ControlPlaneSettings, *, database: str, rpo_s: float
) -> ArchiveReport:
    """The archive of ``database``'s current primary, or why it could not be read."""
    configured = settings.backups.configured

    def unread(error: str) -> ArchiveReport:
        return ArchiveReport(database=database, configured=configured, rpo_s=rpo_s, error=error)

    if not configured:
        return unread("no pgBackRest configuration (CONTROLPLANE_PGBACKREST_CONFIG)")
    if database != settings.failover.database_name:
        return unread("not the configured database")
    try:
        primary = locate_primary(settings.failover, database, timeout=2.0)
        archive = archive_reader(settings.backups, timeout=2.0)(primary)
    except (ReplicationReadError, ArchiveReadError) as exc:
        return unread(str(exc))
    return ArchiveReport.of(archive, database=database, rpo_s=rpo_s)


@router.get(
    "/dr/archive",
    response_model=list[ArchiveReport],
    summary="WAL archiving of each database's primary against its RPO",
)
async def archive(settings: SettingsDep) -> list[ArchiveReport]:
    policy = load_dr_policy(settings.policies.dr_policy)
    views = []
    for database in policy.spec.databases:
        rpo = policy.spec.tiers[database.tier].rpo.total_seconds()
        views.append(
            await run_in_threadpool(read_archive_view, settings, database=database.name, rpo_s=rpo)
        )
    return views


@router.get(
    "/dr/backups",
    response_model=list[StoredBackup],
    summary="Backups taken, newest first (type, start / stop, sizes, WAL range, outcome)",
)
def backups(
    session: ReaderDep,
    database: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[StoredBackup]:
    return list_backups(session, database=database, limit=limit)


@router.get(
    "/dr/restore-validations",
    response_model=list[StoredRestoreRun],
    summary="Restores validated, newest first (duration, point reached, checks, outcome)",
)
def restore_validations(
    session: ReaderDep,
    database: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[StoredRestoreRun]:
    return list_restore_runs(session, database=database, limit=limit)


@router.post(
    "/dr/restore-validations",
    response_model=StoredRestoreRun,
    status_code=status.HTTP_201_CREATED,
    summary="Store a restore validated by a client (operator)",
)
def add_restore_validation(
    run: NewRestoreRun, _operator: CurrentOperator, session: WriterDep
) -> StoredRestoreRun:
    return record_restore_run(session, run=run)
