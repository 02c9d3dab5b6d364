"""Capacity figures (pure): replicas against the policy and live HPA bounds, CPU against its
target, and the scaling decisions on a timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import plotly.graph_objects as go

from controlplane.client.models import AuditEntry, ServiceCapacity

__all__ = [
    "SCALING_ACTIONS",
    "cpu_figure",
    "decision_service",
    "replicas_figure",
    "scaling_timeline_figure",
]

SCALING_ACTIONS = ("scale_out", "scale_in", "set_replica_bounds")
LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "height": 300,
    "template": "plotly_white",
    "legend": {"orientation": "h", "y": -0.2},
}


def _base(title: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title={"text": title, "x": 0}, **LAYOUT)
    return figure


def _bound_marker(
    *, x: Sequence[str], y: Sequence[int | None], name: str, colour: str, dash: bool
) -> go.Scatter:
    return go.Scatter(
        x=list(x),
        y=list(y),
        mode="markers",
        name=name,
        marker={
            "symbol": "line-ew-open",
            "size": 30,
            "color": colour,
            "line": {"width": 3 if not dash else 2, "color": colour},
        },
        hovertemplate=f"{name}: %{{y}}<extra>%{{x}}</extra>",
    )


def replicas_figure(services: Sequence[ServiceCapacity]) -> go.Figure:
    """Current / desired / ready replicas per service (bars) with the policy's min and max and
    the live autoscaler's min and max (markers), so drift between them shows."""
    figure = _base("Replicas: live against the policy bounds")
    names = [service.service for service in services]

    def live(attribute: str) -> list[int | None]:
        return [
            None if service.live is None else getattr(service.live, attribute)
            for service in services
        ]

    for attribute, label, colour in (
        ("current_replicas", "current", "#3b6fb6"),
        ("desired_replicas", "desired", "#8e44ad"),
        ("ready_replicas", "ready", "#27ae60"),
    ):
        figure.add_trace(go.Bar(x=names, y=live(attribute), name=label, marker_color=colour))
    figure.add_trace(
        _bound_marker(
            x=names,
            y=[service.policy.min_replicas for service in services],
            name="policy min",
            colour="#7f8c8d",
            dash=False,
        )
    )
    figure.add_trace(
        _bound_marker(
            x=names,
            y=[service.policy.max_replicas for service in services],
            name="policy max",
            colour="#2c3e50",
            dash=False,
        )
    )

    def hpa(attribute: str) -> list[int | None]:
        return [
            None
            if service.live is None or service.live.autoscaler is None
            else getattr(service.live.autoscaler, attribute)
            for service in services
        ]

    figure.add_trace(
        _bound_marker(x=names, y=hpa("min_replicas"), name="HPA min", colour="#e67e22", dash=True)
    )
    figure.add_trace(
        _bound_marker(x=names, y=hpa("max_replicas"), name="HPA max", colour="#c0392b", dash=True)
    )
    figure.update_layout(barmode="group")
    figure.update_xaxes(title_text="service", type="category")
    figure.update_yaxes(title_text="replicas", rangemode="tozero")
    return figure


def cpu_figure(services: Sequence[ServiceCapacity]) -> go.Figure:
    """CPU utilisation per service against the policy's target (unknown CPU: no bar)."""
    figure = _base("CPU against target")
    names = [service.service for service in services]
    cpu = [None if service.live is None else service.live.cpu_percent for service in services]
    targets = [service.policy.target_cpu_percent for service in services]
    figure.add_trace(
        go.Bar(
            x=names,
            y=cpu,
            name="CPU %",
            marker={
                "color": [
                    "#c0392b" if value is not None and value > target else "#3b6fb6"
                    for value, target in zip(cpu, targets, strict=True)
                ]
            },
            text=["no data" if value is None else f"{value} %" for value in cpu],
            textposition="outside",
        )
    )
    figure.add_trace(
        _bound_marker(x=names, y=targets, name="target CPU %", colour="#e67e22", dash=False)
    )
    figure.update_xaxes(title_text="service", type="category")
    figure.update_yaxes(title_text="CPU (% of requests)", rangemode="tozero")
    return figure


def decision_service(entry: AuditEntry) -> str:
    service = entry.evidence.get("service")
    if isinstance(service, str) and service:
        return service
    return entry.target.rsplit("/", 1)[-1]


def scaling_timeline_figure(
    decisions: Sequence[AuditEntry], *, start: datetime, end: datetime
) -> go.Figure:
    """Scaling decisions per service over time: ▲ scale out, ▼ scale in, ◆ bounds; filled when
    taken, open when refused."""
    figure = _base("Scaling decisions")
    symbols = {"scale_out": "triangle-up", "scale_in": "triangle-down"}
    for action in SCALING_ACTIONS:
        for decision in ("taken", "refused"):
            chosen = [e for e in decisions if e.action == action and e.decision == decision]
            if not chosen:
                continue
            symbol = symbols.get(action, "diamond")
            figure.add_trace(
                go.Scatter(
                    x=[entry.at for entry in chosen],
                    y=[decision_service(entry) for entry in chosen],
                    mode="markers",
                    name=f"{action} {decision}",
                    marker={
                        "symbol": symbol if decision == "taken" else f"{symbol}-open",
                        "size": 12,
                    },
                    text=[entry.reason for entry in chosen],
                    hovertemplate="%{x|%Y-%m-%d %H:%M:%S} UTC<br>%{text}<extra></extra>",
                )
            )
    if not decisions:
        figure.add_annotation(
            text="no scaling decisions in this range",
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            showarrow=False,
        )
    figure.update_xaxes(title_text="time (UTC)", range=[start, end])
    figure.update_yaxes(title_text="service", type="category")
    return figure
