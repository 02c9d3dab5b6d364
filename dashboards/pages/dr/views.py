"""DR components from data (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dash import html

from controlplane.client.models import DatabaseDR, Finding
from dashboards.pages.dr.figures import NO_DRILL
from dashboards.ui import DASH, ago, duration_text, empty_state, table, utc

__all__ = ["databases_table", "drills_table", "failover_text", "findings_table"]

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
