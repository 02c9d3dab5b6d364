"""Backups, restore validations and WAL archiving of the DR policy's databases.

``GET /dr/backups`` and ``GET /dr/restore-validations`` serve what the store holds (each backup
as pgBackRest described it; each restore with its duration, the point it reached and its
checks), newest first; ``POST /dr/restore-validations`` stores a restore validated elsewhere
(``controlplane drill restore``; operator). ``GET /dr/archive`` reads the current primary's
archiving live (the newest archived WAL against its current LSN, against the tier's RPO).
"""

from __future__ import annotations

from fastapi import APIRouter, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import AwareDatetime, BaseModel

from controlplane.api.deps import CurrentOperator, ReaderDep, SettingsDep, WriterDep
from controlplane.backups.archive import ArchiveStatus
from controlplane.backups.errors import ArchiveReadError
from controlplane.core.config import ControlPlaneSettings
from controlplane.evaluation.service import archive_reader
from controlplane.failover.nodes import configured_nodes
from controlplane.store.backups import (
    NewRestoreRun,
    StoredBackup,
    StoredRestoreRun,
    list_backups,
    list_restore_runs,
    record_restore_run,
)
from controlplane.targets.policy import load_dr_policy
from controlplane.targets.reconcile import NodeTopology
from controlplane.targets.replication import ReplicationReadError

router = APIRouter(tags=["backups"])

__all__ = ["ArchiveView", "read_archive_view", "router"]


class ArchiveView(BaseModel):
    """WAL archiving on the current primary (null numbers: unknown, never 0)."""

    database: str
    configured: bool
    rpo_s: float
    observed_at: AwareDatetime | None = None
    enabled: bool | None = None
    failing: bool | None = None
    #: pgBackRest's message for the newest failure, when readable.
    failure: str | None = None
    current_wal: str | None = None
    last_archived_wal: str | None = None
    last_archived_at: AwareDatetime | None = None
    last_failed_wal: str | None = None
    last_failed_at: AwareDatetime | None = None
    failed_count: int | None = None
    pending_segments: int | None = None
    lag_s: float | None = None
    lag_bytes: int | None = None
    #: Why the archive could not be read (no primary, not configured, ...).
    error: str | None = None


def _from_status(view: ArchiveView, archive: ArchiveStatus) -> ArchiveView:
    lag = archive.lag
    return view.model_copy(
        update={
            "observed_at": archive.observed_at,
            "enabled": archive.enabled,
            "failing": archive.failing,
            "failure": archive.error,
            "current_wal": archive.current_wal,
            "last_archived_wal": archive.last_archived_wal,
            "last_archived_at": archive.last_archived_at,
            "last_failed_wal": archive.last_failed_wal,
            "last_failed_at": archive.last_failed_at,
            "failed_count": archive.failed_count,
            "pending_segments": archive.pending_segments,
            "lag_s": None if lag is None else lag.total_seconds(),
            "lag_bytes": archive.lag_bytes,
        }
    )


def read_archive_view(
    settings: ControlPlaneSettings, *, database: str, rpo_s: float
) -> ArchiveView:
    """The archive of ``database``'s current primary, or why it could not be read."""
    view = ArchiveView(database=database, configured=settings.backups.configured, rpo_s=rpo_s)
    if not settings.backups.configured:
        return view.model_copy(
            update={"error": "no pgBackRest configuration (CONTROLPLANE_PGBACKREST_CONFIG)"}
        )
    if database != settings.failover.database_name:
        return view.model_copy(update={"error": "not the configured database"})
    topology = NodeTopology(nodes=configured_nodes(settings.failover), database=database)
    try:
        archive = archive_reader(settings.backups, timeout=2.0)(topology(database))
    except (ReplicationReadError, ArchiveReadError) as exc:
        return view.model_copy(update={"error": str(exc)})
    return _from_status(view, archive)


@router.get(
    "/dr/archive",
    response_model=list[ArchiveView],
    summary="WAL archiving of each database's primary against its RPO",
)
async def archive(settings: SettingsDep) -> list[ArchiveView]:
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
    database: str | None = None,
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
    database: str | None = None,
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
