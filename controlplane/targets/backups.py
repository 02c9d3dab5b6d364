"""Backup, archive and restore checks against the DR policy (pure, no I/O).

Findings (kind → when), for a database whose backups the control plane takes:

* ``dr.backup_stale`` — no successful full backup within 1.5 × ``full_every`` (subject
  ``database/<db>/backup/full``), or no successful backup of any type within 1.5 ×
  ``differential_every`` (``.../backup/differential``). The half cadence of slack lets a
  backup run late and take its time before it counts as missed.
* ``dr.backup_failed`` — the newest backup attempt failed (pgBackRest's error as evidence).
* ``dr.archiving_failing`` — WAL archiving is off, or its newest attempt failed (with
  pgBackRest's message when it could be read).
* ``dr.archive_lag`` — the WAL not yet archived is older than the tier's RPO.
* ``dr.restore_validation_failed`` — the newest restore of a kind (``backup``,
  ``point_in_time``) failed: the evidence says what was restored and which checks failed.
* ``dr.restore_rto_exceeded`` — the newest successful restore of a kind took longer than the
  tier's RTO to come up.

Each resolves once a good record exists (a newer successful backup or restore, archiving
working again, the lag back under the RPO).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controlplane.backups.archive import ArchiveStatus
from controlplane.targets.findings import Finding
from controlplane.targets.policy import DatabasePolicy, DRPolicy, TierTargets

__all__ = [
    "ARCHIVE_KINDS",
    "BACKUP_KINDS",
    "BACKUP_SLACK",
    "BackupRecord",
    "RestoreRecord",
    "check_archive",
    "check_backups",
]

#: A backup counts as missed after this many cadences without one.
BACKUP_SLACK = 1.5
BACKUP_KINDS = frozenset(
    {
        "dr.backup_stale",
        "dr.backup_failed",
        "dr.restore_validation_failed",
        "dr.restore_rto_exceeded",
    }
)
ARCHIVE_KINDS = frozenset({"dr.archiving_failing", "dr.archive_lag"})


@dataclass(frozen=True, kw_only=True)
class BackupRecord:
    type: str
    finished_at: datetime
    succeeded: bool
    label: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class RestoreRecord:
    kind: str
    finished_at: datetime
    succeeded: bool
    duration_s: float | None = None
    target: str = ""
    error: str | None = None
    failed_checks: tuple[str, ...] = ()
    run_id: str | None = None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _stale(
    *, subject: str, what: str, last: BackupRecord | None, allowed: timedelta, now: datetime
) -> Finding | None:
    if last is not None and now - last.finished_at <= allowed:
        return None
    return Finding(
        kind="dr.backup_stale",
        subject=subject,
        severity="warning",
        summary=(
            f"no successful {what} on record"
            if last is None
            else f"last successful {what} {last.finished_at.isoformat()}"
        )
        + f" (allowed age {allowed.total_seconds():.0f} s)",
        evidence={
            "last_backup": _iso(None if last is None else last.finished_at),
            "label": None if last is None else last.label,
            "max_age_s": allowed.total_seconds(),
        },
    )


def check_backups(
    policy: DRPolicy,
    database: DatabasePolicy,
    *,
    now: datetime,
    backups: Sequence[BackupRecord],
    restores: Sequence[RestoreRecord],
) -> list[Finding]:
    """Backup age and outcome, and the restores' outcome and RTO, of one database."""
    cadence = policy.spec.backups
    targets = policy.spec.tiers[database.tier]
    subject = f"database/{database.name}"
    findings: list[Finding] = []
    done = sorted((b for b in backups if b.succeeded), key=lambda b: b.finished_at)
    fulls = [b for b in done if b.type == "full"]
    full = _stale(
        subject=f"{subject}/backup/full",
        what="full backup",
        last=fulls[-1] if fulls else None,
        allowed=cadence.full_every * BACKUP_SLACK,
        now=now,
    )
    if full is not None:
        findings.append(full)
    if fulls:
        differential = _stale(
            subject=f"{subject}/backup/differential",
            what="backup",
            last=done[-1],
            allowed=cadence.differential_every * BACKUP_SLACK,
            now=now,
        )
        if differential is not None:
            findings.append(differential)
    newest = max(backups, key=lambda b: b.finished_at, default=None)
    if newest is not None and not newest.succeeded:
        findings.append(
            Finding(
                kind="dr.backup_failed",
                subject=f"{subject}/backup",
                severity="critical",
                summary=f"{database.name}: the {newest.type} backup at "
                f"{newest.finished_at.isoformat()} failed: {newest.error or 'no reason given'}",
                evidence={
                    "type": newest.type,
                    "finished_at": newest.finished_at.isoformat(),
                    "error": newest.error,
                },
            )
        )
    findings.extend(_restore_findings(database, targets, restores))
    return findings


def _restore_findings(
    database: DatabasePolicy, targets: TierTargets, restores: Sequence[RestoreRecord]
) -> list[Finding]:
    findings: list[Finding] = []
    for kind in sorted({r.kind for r in restores}):
        history = sorted((r for r in restores if r.kind == kind), key=lambda r: r.finished_at)
        subject = f"database/{database.name}/restore/{kind}"
        newest = history[-1]
        if not newest.succeeded:
            findings.append(
                Finding(
                    kind="dr.restore_validation_failed",
                    subject=subject,
                    severity="critical",
                    summary=f"{database.name}: the {kind.replace('_', ' ')} restore validation "
                    f"at {newest.finished_at.isoformat()} failed: "
                    f"{newest.error or 'no reason given'}",
                    evidence=_restore_evidence(newest),
                )
            )
        good = [r for r in history if r.succeeded and r.duration_s is not None]
        if (
            good
            and good[-1].duration_s is not None
            and good[-1].duration_s > targets.rto.total_seconds()
        ):
            last = good[-1]
            findings.append(
                Finding(
                    kind="dr.restore_rto_exceeded",
                    subject=subject,
                    severity="critical",
                    summary=f"{database.name}: the last {kind.replace('_', ' ')} restore took "
                    f"{last.duration_s:.0f} s to come up; the {database.tier} RTO is "
                    f"{targets.rto.total_seconds():.0f} s",
                    evidence={**_restore_evidence(last), "rto_s": targets.rto.total_seconds()},
                )
            )
    return findings


def _restore_evidence(record: RestoreRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "target": record.target,
        "finished_at": record.finished_at.isoformat(),
        "duration_s": record.duration_s,
        "error": record.error,
        "failed_checks": list(record.failed_checks),
    }


def check_archive(
    policy: DRPolicy, database: DatabasePolicy, *, archive: ArchiveStatus
) -> list[Finding]:
    """WAL archiving of one database's primary: working, and its lag against the RPO."""
    rpo = policy.spec.tiers[database.tier].rpo
    subject = f"database/{database.name}/archive"
    lag = archive.lag
    evidence: dict[str, Any] = {
        "lag_s": None if lag is None else lag.total_seconds(),
        "lag_bytes": archive.lag_bytes,
        "rpo_s": rpo.total_seconds(),
        "current_wal": archive.current_wal,
        "last_archived_wal": archive.last_archived_wal,
        "last_archived_at": _iso(archive.last_archived_at),
        "pending_segments": archive.pending_segments,
    }
    findings: list[Finding] = []
    if not archive.enabled:
        findings.append(
            Finding(
                kind="dr.archiving_failing",
                subject=subject,
                severity="critical",
                summary=f"{database.name}: WAL archiving is off (archive_mode "
                f"{archive.archive_mode}): no point-in-time recovery past the last backup",
                evidence={**evidence, "archive_mode": archive.archive_mode},
            )
        )
    elif archive.failing:
        reason = (
            archive.error or "pgBackRest's message is not readable here: see the PostgreSQL log"
        )
        findings.append(
            Finding(
                kind="dr.archiving_failing",
                subject=subject,
                severity="critical",
                summary=f"{database.name}: archiving {archive.last_failed_wal} failed "
                f"({archive.failed_count} failure(s)): {reason}",
                evidence={
                    **evidence,
                    "error": archive.error,
                    "last_failed_wal": archive.last_failed_wal,
                    "last_failed_at": _iso(archive.last_failed_at),
                    "failed_count": archive.failed_count,
                },
            )
        )
    if lag is not None and lag > rpo:
        findings.append(
            Finding(
                kind="dr.archive_lag",
                subject=subject,
                severity="critical",
                summary=f"{database.name}: WAL up to {lag.total_seconds():.0f} s old is not "
                f"archived yet; the {database.tier} RPO is {rpo.total_seconds():.0f} s",
                evidence=evidence,
            )
        )
    return findings
