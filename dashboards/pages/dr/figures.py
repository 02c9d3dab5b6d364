"""DR figures (pure): replication lag against the tier's RPO, and each drill's measured RTO /
RPO against the targets."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from controlplane.client.models import DatabaseDR

__all__ = ["NO_DRILL", "NO_REPLICA", "drills_figure", "replication_lag_figure"]

NO_DRILL = "no drill on record"
NO_REPLICA = "no replica reported"

LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "height": 300,
    "template": "plotly_white",
    "legend": {"orientation": "h", "y": -0.25},
}


def _base(title: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title={"text": title, "x": 0}, **LAYOUT)
    return figure


def _only_message(figure: go.Figure, message: str) -> go.Figure:
    """A figure with nothing to draw: the message and no axes (an empty axis would show an
    arbitrary range as if it were data)."""
    figure.add_annotation(
        text=message,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 16},
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def replication_lag_figure(databases: Sequence[DatabaseDR]) -> go.Figure:
    """Replay lag of every replica (bars, seconds) with its database's RPO (a marker above the
    same bar). A replica with unknown lag has no bar; with no replica reported at all, only that
    message and no axes."""
    figure = _base("Replication lag against the RPO")
    names: list[str] = []
    lags: list[float | None] = []
    rpos: list[float] = []
    for database in databases:
        for replica in database.replicas or []:
            names.append(f"{database.database}/{replica.name}")
            lags.append(replica.replay_lag_s)
            rpos.append(database.rpo_s)
    if not names:
        return _only_message(figure, NO_REPLICA)
    figure.add_trace(
        go.Bar(
            x=names,
            y=lags,
            name="replay lag (s)",
            marker={
                "color": [
                    "#c0392b" if lag is not None and lag > rpo else "#3b6fb6"
                    for lag, rpo in zip(lags, rpos, strict=True)
                ]
            },
            text=["no data" if lag is None else f"{lag:.1f} s" for lag in lags],
            textposition="outside",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=names,
            y=rpos,
            mode="markers",
            name="RPO of the tier (s)",
            marker={
                "symbol": "line-ew-open",
                "size": 34,
                "color": "#c0392b",
                "line": {"width": 3, "color": "#c0392b"},
            },
        )
    )
    figure.update_xaxes(title_text="database / replica", type="category")
    figure.update_yaxes(title_text="seconds", rangemode="tozero")
    return figure


def drills_figure(databases: Sequence[DatabaseDR]) -> go.Figure:
    """Measured RTO (●) and RPO (◆) of every drill over time, with each database's RTO and RPO
    targets as dashed lines. With no drill on record, only that message: no axes (an empty date
    axis would show an arbitrary range)."""
    figure = _base("Drills: measured RTO / RPO against the targets")
    if not any(database.drills for database in databases):
        return _only_message(figure, NO_DRILL)
    for database in databases:
        drills = sorted(database.drills, key=lambda drill: drill.finished_at)
        figure.add_trace(
            go.Scatter(
                x=[drill.finished_at for drill in drills],
                y=[drill.measured_rto_s for drill in drills],
                mode="markers",
                name=f"{database.database} RTO",
                marker={"symbol": "circle", "size": 10},
                text=[drill.kind for drill in drills],
                hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{text}: RTO %{y:.1f} s<extra></extra>",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=[drill.finished_at for drill in drills],
                y=[drill.measured_rpo_s for drill in drills],
                mode="markers",
                name=f"{database.database} RPO",
                marker={"symbol": "diamond", "size": 10},
                text=[drill.kind for drill in drills],
                hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{text}: RPO %{y:.1f} s<extra></extra>",
            )
        )
        figure.add_hline(
            y=database.rto_s,
            line_dash="dash",
            line_color="#c0392b",
            annotation_text=f"{database.database} RTO target {database.rto_s:g} s",
        )
        figure.add_hline(
            y=database.rpo_s,
            line_dash="dot",
            line_color="#e67e22",
            annotation_text=f"{database.database} RPO target {database.rpo_s:g} s",
        )
    figure.update_xaxes(title_text="drill finished (UTC)", type="date")
    figure.update_yaxes(title_text="seconds", rangemode="tozero")
    return figure
