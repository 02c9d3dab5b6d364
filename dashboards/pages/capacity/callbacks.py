"""Capacity callbacks: ``/capacity`` (the orchestrator, the policy's services and, on
Kubernetes, every Deployment) and the scaling decisions of the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dash import Dash, Input, Output, dcc, html

from controlplane.client.http import ClientError, ControlPlaneClient
from dashboards.pages.capacity.figures import (
    SCALING_ACTIONS,
    cpu_figure,
    replicas_figure,
    scaling_timeline_figure,
)
from dashboards.pages.capacity.layout import CapacityIds
from dashboards.pages.capacity.views import (
    capacity_table,
    orchestrator_line,
    workloads_section,
)
from dashboards.ui import GRAPH_CONFIG, empty_state, error_state, now_utc

__all__ = ["TIMELINE_SPAN", "register"]

#: How far back the scaling timeline goes.
TIMELINE_SPAN = timedelta(days=1)


def register(app: Dash, *, client: ControlPlaneClient) -> None:
    @app.callback(
        Output(CapacityIds.ORCHESTRATOR, "children"),
        Output(CapacityIds.STATUS, "children"),
        Output(CapacityIds.TABLE, "children"),
        Output(CapacityIds.WORKLOADS, "children"),
        Output(CapacityIds.REPLICAS, "children"),
        Output(CapacityIds.CPU, "children"),
        Output(CapacityIds.TIMELINE, "children"),
        Input(CapacityIds.TRIGGER, "children"),
    )
    def capacity(_trigger: Any) -> tuple[Any, ...]:
        now = now_utc()
        start = now - TIMELINE_SPAN
        try:
            found = client.capacity()
        except ClientError as exc:
            return None, error_state(exc), None, None, None, None, None
        try:
            decisions = [
                entry
                for entry in client.audit(since=start, limit=1000)
                if entry.action in SCALING_ACTIONS
            ]
            timeline: Any = dcc.Graph(
                figure=scaling_timeline_figure(decisions, start=start, end=now), config=GRAPH_CONFIG
            )
        except ClientError as exc:
            timeline = error_state(exc)
        orchestrator = orchestrator_line(found.orchestrator)
        workloads = workloads_section(found)
        status: Any = None
        if found.error is not None:
            status = error_state(f"live state incomplete: {found.error}")
        if not found.services:
            return (
                orchestrator,
                status or empty_state("no services in the capacity policy"),
                None,
                workloads,
                None,
                None,
                timeline,
            )
        return (
            orchestrator,
            status,
            html.Div([html.H3("Services of the capacity policy"), capacity_table(found.services)]),
            workloads,
            dcc.Graph(figure=replicas_figure(found.services), config=GRAPH_CONFIG),
            dcc.Graph(figure=cpu_figure(found.services), config=GRAPH_CONFIG),
            timeline,
        )
