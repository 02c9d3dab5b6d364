"""DR components from data (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dash import html

from controlplane.client.models import DatabaseDR, Finding
from dashboards.pages.dr.figures import NO_DRILL
from dashboards.ui import DASH, ago, duration_text, empty_state, table, utc

__all__ = [
    "archive_table",
    "backups_table",
    "databases_table",
    "drills_table",
    "failover_text",
    "findings_table",
    "restores_table",
]

NO_BACKUP = "no backup on record"
NO_RESTORE = "no restore validation on record"
MB = 1024 * 1024
DRIVERS = {"patroni": "Patroni", "local": "control plane"}


def failover_text(driver: str | None, mode: str | None) -> str:
    """Who fails the database over: ``Patroni, auto`` / ``Patroni, controlled`` /
    ``control plane`` (the local driver), or nothing when the control plane does not say."""
    if driver is None:
        return ""
    name = DRIVERS.get(driver, driver)
    return f"{name}, {mode}" if driver == "patroni" and mode else name


def _check(value: float | None, target: float) -> html.Span:
    if value is None:
        return html.Span(f"{DASH} / {duration_text(target)}", className="no-data")
    over = value > target
    return html.Span(
        f"{duration_text(value)} / {duration_text(target)}" + (" ✗" if over else " ✓"),
        className="burn-over" if over else "ok",
    )


def databases_table(
    databases: Sequence[DatabaseDR], *, now: datetime, failover: str = ""
) -> html.Div:
    """One row per database; ``failover`` (:func:`failover_text`) beside the primary."""
    if not databases:
        return empty_state("no databases in the DR policy")
    rows = []
    for database in databases:
        if database.replicas is None:
            replicas: list[html.Span] | html.Span = html.Span(
                f"no data: {database.error or 'replication not readable'}", className="no-data"
            )
        elif not database.replicas:
            replicas = html.Span("no replica streaming", className="burn-over")
        else:
            replicas = [
                html.Span(
                    [
                        f"{replica.name} ({replica.state}): ",
                        _check(replica.replay_lag_s, database.rpo_s),
                        f" · {replica.lag_bytes} B behind" if replica.lag_bytes is not None else "",
                        html.Br(),
                    ]
                )
                for replica in database.replicas
            ]
        last_drill = max((drill.finished_at for drill in database.drills), default=None)
        rows.append(
            [
                database.database,
                database.tier,
                duration_text(database.rto_s),
                duration_text(database.rpo_s),
                html.Span(
                    [
                        database.primary or html.Span(DASH, className="no-data"),
                        f" ({failover})" if failover else "",
                    ]
                ),
                replicas,
                f"{ago(last_drill, now=now)} ({utc(last_drill)})" if last_drill else "never",
                f"{ago(database.last_restore_validation, now=now)} "
                f"({utc(database.last_restore_validation)})"
                if database.last_restore_validation
                else "never",
            ]
        )
    return html.Div(
        table(
            header=[
                "Database",
                "Tier",
                "RTO target",
                "RPO target",
                "Primary (failover by)",
                "Replicas: lag / RPO",
                "Last drill",
                "Last restore validation",
            ],
            rows=rows,
            row_attributes=[{"data-database": d.database} for d in databases],
            class_name="grid dr-table",
        )
    )


def drills_table(databases: Sequence[DatabaseDR]) -> html.Div:
    drills = [(database, drill) for database in databases for drill in database.drills]
    if not drills:
        return empty_state(NO_DRILL)
    drills.sort(key=lambda pair: pair[1].finished_at, reverse=True)
    rows = [
        [
            database.database,
            drill.kind,
            utc(drill.finished_at),
            _check(drill.measured_rto_s, database.rto_s),
            _check(drill.measured_rpo_s, database.rpo_s),
            DASH if drill.lost_acknowledged_writes is None else str(drill.lost_acknowledged_writes),
            "succeeded" if drill.succeeded else html.Span("failed", className="burn-over"),
        ]
        for database, drill in drills
    ]
    return html.Div(
        table(
            header=[
                "Database",
                "Drill",
                "Finished",
                "RTO measured / target",
                "RPO measured / target",
                "Acknowledged writes lost",
                "Result",
            ],
            rows=rows,
            class_name="grid drill-table",
        )
    )


def _size(value: int | None) -> str:
    if value is None:
        return DASH
    return f"{value / MB / 1024:.2f} GB" if value >= 1024 * MB else f"{value / MB:.1f} MB"


def _result(succeeded: bool, error: str | None) -> html.Span | str:
    if succeeded:
        return "succeeded"
    return html.Span(f"failed: {error or 'no reason given'}", className="burn-over")


def archive_table(databases: Sequence[DatabaseDR], *, now: datetime) -> html.Div:
    """WAL archiving of each database's primary: the lag against the RPO, the newest WAL
    archived and the newest failure with pgBackRest's message."""
    archives = [d.archive for d in databases if d.archive is not None]
    if not archives:
        return empty_state("WAL archiving is not reported by this control plane")
    rows = []
    for archive in archives:
        if archive.error is not None:
            state: html.Span | str = html.Span(f"no data: {archive.error}", className="no-data")
        elif archive.failing or archive.enabled is False:
            reason = archive.failure or (
                "archiving is off" if archive.enabled is False else "see the PostgreSQL log"
            )
            state = html.Span(f"failing: {reason}", className="burn-over")
        else:
            state = "archiving"
        rows.append(
            [
                archive.database,
                state,
                _check(archive.lag_s, archive.rpo_s),
                DASH if archive.lag_bytes is None else f"{archive.lag_bytes / MB:.1f} MB",
                archive.last_archived_wal or DASH,
                ago(archive.last_archived_at, now=now) if archive.last_archived_at else "never",
                DASH if archive.pending_segments is None else str(archive.pending_segments),
                f"{archive.last_failed_wal} ({utc(archive.last_failed_at)})"
                if archive.last_failed_wal
                else DASH,
            ]
        )
    return html.Div(
        table(
            header=[
                "Database",
                "State",
                "Archive lag / RPO",
                "Not archived",
                "Newest archived WAL",
                "Archived",
                "Segments waiting",
                "Newest failure",
            ],
            rows=rows,
            row_attributes=[{"data-archive": a.database} for a in archives],
            class_name="grid archive-table",
        )
    )


def backups_table(databases: Sequence[DatabaseDR], *, now: datetime) -> html.Div:
    backups = [(d, b) for d in databases for b in d.backups]
    if not backups:
        return empty_state(NO_BACKUP)
    backups.sort(key=lambda pair: pair[1].finished_at, reverse=True)
    rows = [
        [
            database.database,
            backup.type
            if backup.type == backup.requested_type
            else f"{backup.type} (asked {backup.requested_type})",
            backup.label or DASH,
            f"{utc(backup.finished_at)} ({ago(backup.finished_at, now=now)})",
            duration_text(backup.duration_s),
            _size(backup.size_bytes),
            _size(backup.repo_delta_bytes),
            f"{backup.wal_start} – {backup.wal_stop}" if backup.wal_start else DASH,
            _result(backup.succeeded, backup.error),
        ]
        for database, backup in backups
    ]
    return html.Div(
        table(
            header=[
                "Database",
                "Type",
                "Label",
                "Finished",
                "Took",
                "Database size",
                "Stored",
                "WAL range",
                "Result",
            ],
            rows=rows,
            row_attributes=[{"data-backup": b.label or f"failed-{b.id}"} for _, b in backups],
            class_name="grid backups-table",
        )
    )


def restores_table(databases: Sequence[DatabaseDR]) -> html.Div:
    """Each restore: what was restored, how long until it took connections against the RTO,
    the point it reached, and its checks."""
    restores = [(d, r) for d in databases for r in d.restore_validations]
    if not restores:
        return empty_state(NO_RESTORE)
    restores.sort(key=lambda pair: pair[1].finished_at, reverse=True)
    rows = []
    for database, run in restores:
        passed = sum(1 for check in run.checks if check.passed)
        failed = [check.name for check in run.checks if not check.passed]
        rows.append(
            [
                database.database,
                run.kind.replace("_", " "),
                run.target,
                utc(run.finished_at),
                _check(run.duration_s, database.rto_s),
                utc(run.reached_at),
                f"{passed} of {len(run.checks)} passed"
                + (f" (failed: {', '.join(failed)})" if failed else ""),
                _result(run.succeeded, run.error),
            ]
        )
    return html.Div(
        table(
            header=[
                "Database",
                "Restore",
                "Target",
                "Finished",
                "Up after / RTO",
                "Last commit replayed",
                "Checks",
                "Result",
            ],
            rows=rows,
            row_attributes=[{"data-restore": r.kind} for _, r in restores],
            class_name="grid restores-table",
        )
    )


def findings_table(findings: Sequence[Finding]) -> html.Div:
    if not findings:
        return empty_state("no open DR finding")
    rows = [
        [
            finding.kind,
            finding.subject,
            finding.severity,
            finding.summary,
            utc(finding.first_seen),
            utc(finding.last_seen),
            str(finding.occurrences),
        ]
        for finding in findings
    ]
    return html.Div(
        table(
            header=["Kind", "Subject", "Severity", "Summary", "First seen", "Last seen", "Seen"],
            rows=rows,
            row_attributes=[{"data-finding": f.kind} for f in findings],
            class_name="grid findings-table",
        )
    )
