"""DR callbacks: ``/dr`` and the open ``dr.*`` findings."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc

from controlplane.client.http import ClientError, ControlPlaneClient
from dashboards.pages.dr.figures import drills_figure, replication_lag_figure
from dashboards.pages.dr.layout import DRIds
from dashboards.pages.dr.views import (
    archive_table,
    backups_table,
    databases_table,
    drills_table,
    failover_text,
    findings_table,
    restores_table,
)
from dashboards.ui import GRAPH_CONFIG, error_state, now_utc

__all__ = ["register"]


def register(app: Dash, *, client: ControlPlaneClient) -> None:
    @app.callback(
        Output(DRIds.DATABASES, "children"),
        Output(DRIds.LAG, "children"),
        Output(DRIds.DRILLS, "children"),
        Output(DRIds.DRILL_TABLE, "children"),
        Output(DRIds.ARCHIVE, "children"),
        Output(DRIds.BACKUPS, "children"),
        Output(DRIds.RESTORES, "children"),
        Output(DRIds.FINDINGS, "children"),
        Input(DRIds.TRIGGER, "children"),
    )
    def dr(_trigger: Any) -> tuple[Any, ...]:
        now = now_utc()
        try:
            findings: Any = findings_table(
                [
                    finding
                    for finding in client.findings(open_only=True, limit=1000)
                    if finding.kind.startswith("dr.")
                ]
            )
        except ClientError as exc:
            findings = error_state(exc)
        try:
            found = client.dr()
        except ClientError as exc:
            return error_state(exc), None, None, None, None, None, None, findings
        databases = found.databases
        return (
            databases_table(
                databases,
                now=now,
                failover=failover_text(found.failover_driver, found.failover_mode),
            ),
            dcc.Graph(figure=replication_lag_figure(databases), config=GRAPH_CONFIG),
            dcc.Graph(figure=drills_figure(databases), config=GRAPH_CONFIG),
            drills_table(databases),
            archive_table(databases, now=now),
            backups_table(databases, now=now),
            restores_table(databases),
            findings,
        )
