"""DR: replication lag against the tier's RPO, each drill against its RTO / RPO targets, time
since the last drill and restore validation, WAL archiving against the RPO, the backups taken
and the restores validated, and the open DR findings."""

from __future__ import annotations

from dash import html

from dashboards.ui import loading

__all__ = ["DRIds", "layout"]


class DRIds:
    TRIGGER = "dr-trigger"
    DATABASES = "dr-databases"
    LAG = "dr-lag"
    DRILLS = "dr-drills"
    DRILL_TABLE = "dr-drill-table"
    ARCHIVE = "dr-archive"
    BACKUPS = "dr-backups"
    RESTORES = "dr-restores"
    FINDINGS = "dr-findings"
    LOADING = "dr-loading"


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Disaster recovery"),
            html.Div(id=DRIds.TRIGGER, hidden=True),
            loading(
                html.Div(
                    [
                        html.Div(
                            html.Div("Loading DR state…", className="state state-loading"),
                            id=DRIds.DATABASES,
                        ),
                        html.Div(id=DRIds.LAG, className="chart"),
                        html.Div(id=DRIds.DRILLS, className="chart"),
                        html.Div(id=DRIds.DRILL_TABLE),
                        html.H3("WAL archive"),
                        html.Div(id=DRIds.ARCHIVE),
                        html.H3("Backups"),
                        html.Div(id=DRIds.BACKUPS),
                        html.H3("Restore validations"),
                        html.Div(id=DRIds.RESTORES),
                        html.H3("Open DR findings"),
                        html.Div(id=DRIds.FINDINGS),
                    ]
                ),
                id=DRIds.LOADING,
            ),
        ],
        className="page page-dr",
    )
