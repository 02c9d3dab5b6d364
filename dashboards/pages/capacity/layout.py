"""Capacity: which orchestrator is read (Kubernetes version, namespace and API server, or the
local gunicorn master), replicas per service (current / desired / min / max), CPU against
target, HPA bounds from the policy against the live ones, on Kubernetes every Deployment of the
namespace with its HPA (those outside the policy marked), and the scaling decisions on a
timeline."""

from __future__ import annotations

from dash import html

from dashboards.ui import loading

__all__ = ["CapacityIds", "layout"]


class CapacityIds:
    TRIGGER = "capacity-trigger"
    ORCHESTRATOR = "capacity-orchestrator"
    STATUS = "capacity-status"
    TABLE = "capacity-table"
    WORKLOADS = "capacity-workloads"
    REPLICAS = "capacity-replicas"
    CPU = "capacity-cpu"
    TIMELINE = "capacity-timeline"
    LOADING = "capacity-loading"


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Capacity"),
            html.Div(id=CapacityIds.TRIGGER, hidden=True),
            loading(
                html.Div(
                    [
                        html.Div(id=CapacityIds.ORCHESTRATOR, className="orchestrator-line"),
                        html.Div(
                            html.Div("Loading capacity…", className="state state-loading"),
                            id=CapacityIds.STATUS,
                        ),
                        html.Div(id=CapacityIds.TABLE),
                        html.Div(id=CapacityIds.WORKLOADS),
                        html.Div(id=CapacityIds.REPLICAS, className="chart"),
                        html.Div(id=CapacityIds.CPU, className="chart"),
                        html.Div(id=CapacityIds.TIMELINE, className="chart"),
                    ]
                ),
                id=CapacityIds.LOADING,
            ),
        ],
        className="page page-capacity",
    )
