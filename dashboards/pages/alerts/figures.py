"""Alerts & actions figures (pure): the action engine's decisions per hour, taken or refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import plotly.graph_objects as go

from controlplane.client.models import AuditEntry

__all__ = ["decisions_figure"]

LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "height": 240,
    "template": "plotly_white",
    "legend": {"orientation": "h", "y": -0.3},
}
COLOURS = {"taken": "#27ae60", "refused": "#c0392b"}


def _hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def decisions_figure(entries: Sequence[AuditEntry], *, start: datetime, end: datetime) -> go.Figure:
    """Decisions per hour (stacked: taken, refused) between ``start`` and ``end``; empty hours
    are zero bars, since the audit log records every decision."""
    figure = go.Figure()
    figure.update_layout(title={"text": "Decisions per hour", "x": 0}, barmode="stack", **LAYOUT)
    hours = []
    hour = _hour(start)
    while hour <= end:
        hours.append(hour)
        hour += timedelta(hours=1)
    for decision in ("taken", "refused"):
        counts = Counter(
            _hour(entry.at) for entry in entries if entry.decision == decision and entry.at >= start
        )
        figure.add_trace(
            go.Bar(
                x=hours,
                y=[counts.get(hour, 0) for hour in hours],
                name=decision,
                marker_color=COLOURS[decision],
                hovertemplate="%{x|%Y-%m-%d %H}:00 UTC: %{y}<extra>" + decision + "</extra>",
            )
        )
    figure.update_xaxes(title_text="hour (UTC)", range=[start, end])
    figure.update_yaxes(title_text="decisions", rangemode="tozero")
    return figure
