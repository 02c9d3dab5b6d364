"""SLO detail figures (pure: data in, ``go.Figure`` out; no client, no clock).

Every time axis is UTC and says so; the SLI and the events figure share the same x range so the
alerts and actions line up with what the SLI did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import plotly.graph_objects as go

from controlplane.client.models import Alert, AuditEntry
from dashboards.status import AlertWindow, alert_label, window_seconds
from slo.durations import format_duration

__all__ = [
    "TIME_AXIS_TITLE",
    "budget_figure",
    "burn_rate_figure",
    "events_figure",
    "sli_figure",
]

TIME_AXIS_TITLE = "time (UTC)"
SEVERITY_COLOURS = {"page": "#c0392b", "ticket": "#e67e22"}
#: Factor markers are drawn over the (red when exceeded) bars: darker colours.
FACTOR_COLOURS = {"page": "#1f2d3d", "ticket": "#8e44ad"}
LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "height": 280,
    "template": "plotly_white",
    "legend": {"orientation": "h", "y": -0.25},
}


def _base(title: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title={"text": title, "x": 0}, **LAYOUT)
    return figure


def sli_figure(
    *,
    times: Sequence[datetime],
    sli: Sequence[float | None],
    objective: float,
    start: datetime,
    end: datetime,
) -> go.Figure:
    """The SLI over time against its objective (a dashed line). ``None`` = no data (a gap)."""
    figure = _base("SLI and objective")
    figure.add_trace(
        go.Scatter(
            x=list(times),
            y=[None if value is None else value * 100 for value in sli],
            mode="lines+markers",
            name="SLI",
            connectgaps=False,
            marker={"size": 3},
            line={"color": "#3b6fb6"},
            hovertemplate="%{x|%Y-%m-%d %H:%M:%S} UTC<br>SLI %{y:.4f} %<extra></extra>",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[start, end],
            y=[objective * 100, objective * 100],
            mode="lines",
            name=f"objective {objective * 100:g} %",
            line={"color": "#c0392b", "dash": "dash"},
            hoverinfo="skip",
        )
    )
    figure.update_xaxes(title_text=TIME_AXIS_TITLE, range=[start, end])
    figure.update_yaxes(title_text="SLI (%)")
    return figure


def budget_figure(
    *,
    times: Sequence[datetime],
    budget: Sequence[float | None],
    now: datetime,
    exhaustion: datetime | None,
    start: datetime,
    end: datetime,
) -> go.Figure:
    """Error budget remaining (%) over time, the exhausted line at 0 % and, when it burns, the
    forecast from now to exhaustion (dashed; labelled with its time even beyond the axis)."""
    figure = _base("Error budget burn-down")
    figure.add_trace(
        go.Scatter(
            x=list(times),
            y=[None if value is None else value * 100 for value in budget],
            mode="lines",
            name="budget remaining",
            connectgaps=False,
            line={"color": "#3b6fb6"},
            hovertemplate="%{x|%Y-%m-%d %H:%M:%S} UTC<br>%{y:.2f} %<extra></extra>",
        )
    )
    horizon = end + (end - start) / 4
    figure.add_trace(
        go.Scatter(
            x=[start, horizon],
            y=[0, 0],
            mode="lines",
            name="exhausted (0 %)",
            line={"color": "#c0392b", "width": 1},
            hoverinfo="skip",
        )
    )
    current = next((value for value in reversed(budget) if value is not None), None)
    if exhaustion is not None and current is not None:
        figure.add_trace(
            go.Scatter(
                x=[now, exhaustion],
                y=[current * 100, 0],
                mode="lines",
                name=f"forecast: exhausted {exhaustion:%Y-%m-%d %H:%M} UTC",
                line={"color": "#e67e22", "dash": "dot"},
                hoverinfo="skip",
            )
        )
    figure.update_xaxes(title_text=TIME_AXIS_TITLE, range=[start, horizon])
    figure.update_yaxes(title_text="budget remaining (%)")
    return figure


def burn_rate_figure(
    *,
    burn_rates: Mapping[str, float | None],
    windows: Sequence[AlertWindow],
    period: str | None = None,
) -> go.Figure:
    """Current burn rate per window (bars) against each alert's factor (a marker on both of
    its windows; filled, and the legend says so, while the alert fires). Windows without data
    are named in the x axis but have no bar. ``period`` (e.g. ``30d``), which the factors are
    for, goes in the title."""
    title = "Burn rate per window against the alert factors"
    figure = _base(title if period is None else f"{title} ({period} period)")
    labels = sorted(burn_rates, key=lambda window: (window_seconds(window), window))
    factor_of: dict[str, float] = {}
    for window in windows:
        for span in (window.long, window.short):
            label = format_duration(span)
            factor_of[label] = max(factor_of.get(label, 0.0), window.factor)
            if label not in labels:
                labels.append(label)
    labels.sort(key=lambda window: (window_seconds(window), window))
    values = [burn_rates.get(label) for label in labels]
    figure.add_trace(
        go.Bar(
            x=labels,
            y=values,
            name="burn rate",
            marker={
                "color": [
                    "#c0392b"
                    if value is not None and value > factor_of.get(label, float("inf"))
                    else "#3b6fb6"
                    for label, value in zip(labels, values, strict=True)
                ]
            },
            text=["no data" if value is None else f"{value:.2f}×" for value in values],
            textposition="outside",
            hovertemplate="%{x}: %{y:.3f}×<extra></extra>",
        )
    )
    for window in windows:
        pair = [format_duration(window.long), format_duration(window.short)]
        colour = FACTOR_COLOURS.get(window.severity, "#555")
        state = "firing" if window.firing else "not firing"
        figure.add_trace(
            go.Scatter(
                x=pair,
                y=[window.factor, window.factor],
                mode="markers",
                name=alert_label(window) + (" · firing" if window.firing else ""),
                marker={
                    "symbol": "line-ew" if window.firing else "line-ew-open",
                    "size": 28,
                    "color": colour,
                    "line": {"width": 5 if window.firing else 3, "color": colour},
                },
                hovertemplate=(
                    f"{window.severity} alert factor {window.factor:g}× ({state})<extra></extra>"
                ),
            )
        )
    figure.update_xaxes(title_text="window", type="category", categoryarray=labels)
    figure.update_yaxes(title_text="burn rate (× budget)", rangemode="tozero")
    return figure


def events_figure(
    *,
    alerts: Sequence[Alert],
    actions: Sequence[AuditEntry],
    start: datetime,
    end: datetime,
) -> go.Figure:
    """Alerts as bars from start to close (still open: to the axis end) and the action
    engine's decisions as markers (taken: filled, refused: crossed), on the SLI's x range."""
    figure = _base("Alerts and actions")
    for alert in alerts:
        closed = alert.closed_at or alert.ends_at
        until = closed if closed is not None and alert.status == "resolved" else end
        colour = SEVERITY_COLOURS.get(alert.severity or "", "#7f8c8d")
        figure.add_trace(
            go.Scatter(
                x=[alert.starts_at, until],
                y=[f"alert: {alert.alertname}"] * 2,
                mode="lines",
                line={"width": 10, "color": colour},
                name=f"{alert.alertname} ({alert.severity or 'no severity'}, {alert.status})",
                hovertemplate=(
                    f"{alert.alertname} {alert.status}<br>from %{{x|%Y-%m-%d %H:%M:%S}} UTC"
                    "<extra></extra>"
                ),
            )
        )
    for decision, symbol in (("taken", "circle"), ("refused", "x")):
        chosen = [entry for entry in actions if entry.decision == decision]
        if not chosen:
            continue
        figure.add_trace(
            go.Scatter(
                x=[entry.at for entry in chosen],
                y=[f"action: {entry.action}" for entry in chosen],
                mode="markers",
                marker={"symbol": symbol, "size": 11},
                name=f"actions {decision}",
                text=[f"{entry.action} {entry.target}: {entry.reason}" for entry in chosen],
                hovertemplate="%{x|%Y-%m-%d %H:%M:%S} UTC<br>%{text}<extra></extra>",
            )
        )
    if not alerts and not actions:
        figure.add_annotation(
            text="no alerts and no actions in this range",
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            showarrow=False,
        )
    figure.update_xaxes(title_text=TIME_AXIS_TITLE, range=[start, end])
    figure.update_yaxes(type="category", automargin=True)
    return figure
