"""Shared pieces of every page: time and number formatting (UTC, zone shown), explicit empty /
loading / error states, and small components (badges, budget bars)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dash import dcc, html
from dash.development.base_component import Component

from controlplane.client.http import (
    ClientError,
    ControlPlaneRefused,
    ControlPlaneUnreachable,
    Forbidden,
    RouteNotServed,
    Unauthorized,
    Unavailable,
)
from dashboards.status import STATUS_LABELS, Status

__all__ = [
    "DASH",
    "GRAPH_CONFIG",
    "ago",
    "budget_bar",
    "describe_error",
    "duration_text",
    "empty_state",
    "error_state",
    "evidence_details",
    "loading",
    "no_data_state",
    "now_utc",
    "percent",
    "status_badge",
    "table",
    "utc",
]

#: Plotly options of every graph (``Any``: Dash types it as a TypedDict).
GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True}
#: Shown where a value is unknown (never 0).
DASH = "—"


def utc(value: datetime | None, *, seconds: bool = True) -> str:
    """``2026-11-21 10:00:05 UTC``; the zone is always written."""
    if value is None:
        return DASH
    shown = value.astimezone(UTC)
    return shown.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def duration_text(seconds: float | None) -> str:
    """A short human duration: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if seconds is None or math.isnan(seconds):
        return DASH
    if math.isinf(seconds):
        return "∞"
    negative = seconds < 0
    rest = abs(seconds)
    if rest < 90:
        text = f"{rest:.0f} s" if rest >= 1 or rest == 0 else f"{rest * 1000:.0f} ms"
    elif rest < 90 * 60:
        text = f"{rest / 60:.0f} min"
    elif rest < 48 * 3600:
        hours, minutes = divmod(round(rest / 60), 60)
        text = f"{hours} h {minutes} min" if minutes else f"{hours} h"
    else:
        days, hours = divmod(round(rest / 3600), 24)
        text = f"{days} d {hours} h" if hours else f"{days} d"
    return f"-{text}" if negative else text


def ago(value: datetime | None, *, now: datetime) -> str:
    if value is None:
        return "never"
    return f"{duration_text((now - value).total_seconds())} ago"


def percent(value: float | None, *, digits: int = 3) -> str:
    if value is None:
        return DASH
    return f"{value * 100:.{digits}f} %"


def describe_error(error: ClientError) -> str:
    """One sentence for an operator; the technical detail follows it."""
    if isinstance(error, ControlPlaneUnreachable):
        return f"control plane unreachable: {error}"
    if isinstance(error, RouteNotServed):
        return f"this control plane does not serve {error.method} {error.path} (yet)"
    if isinstance(error, Unauthorized):
        return f"the console's API token was refused (401): {error.detail}"
    if isinstance(error, Forbidden):
        return f"not allowed with this token (403): {error.detail}"
    if isinstance(error, Unavailable):
        return f"control plane store unavailable (503): {error.detail}"
    if isinstance(error, ControlPlaneRefused):
        refused = f"{error.method} {error.path}"
        return f"the control plane refused {refused}: {error.status} {error.detail}"
    return str(error)


def error_state(error: ClientError | str, *, id: str | None = None) -> html.Div:
    message = error if isinstance(error, str) else describe_error(error)
    extra: dict[str, Any] = {} if id is None else {"id": id}
    return html.Div([html.Strong("Error: "), message], className="state state-error", **extra)


def empty_state(message: str) -> html.Div:
    return html.Div(message, className="state state-empty")


def no_data_state(reason: str) -> html.Div:
    return html.Div(f"no data: {reason}", className="state state-no-data")


def loading(child: Component, *, id: str) -> dcc.Loading:
    """A loading indicator around ``child`` (shown after 300 ms, so quick refreshes don't
    flicker)."""
    return dcc.Loading(child, id=id, type="dot", delay_show=300)


def status_badge(status: Status) -> html.Span:
    return html.Span(STATUS_LABELS[status], className=f"badge badge-{status.replace('_', '-')}")


def budget_bar(remaining: float | None) -> html.Div:
    """The budget left as a bar (red below 25 %, amber below 50 %) with its value."""
    if remaining is None:
        return html.Div(DASH, className="budget budget-unknown", title="no data")
    shown = min(max(remaining, 0.0), 1.0)
    level = "low" if remaining < 0.25 else "mid" if remaining < 0.5 else "high"
    return html.Div(
        [
            html.Div(
                html.Div(className=f"budget-fill budget-{level}", style={"width": f"{shown:.1%}"}),
                className="budget-track",
            ),
            html.Span(f"{remaining * 100:.1f} %", className="budget-value"),
        ],
        className="budget",
        title=f"error budget remaining: {remaining * 100:.2f} %",
    )


def evidence_details(evidence: dict[str, Any], *, summary: str = "evidence") -> html.Details:
    """Expandable JSON of a decision's evidence."""
    return html.Details(
        [
            html.Summary(summary),
            html.Pre(json.dumps(evidence, indent=2, sort_keys=True, default=str)),
        ],
        className="evidence",
    )


def table(
    *,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    id: str | None = None,
    row_attributes: Sequence[dict[str, str]] | None = None,
    class_name: str = "grid",
) -> html.Table:
    """A plain HTML table (cheap to render, even with hundreds of rows); ``row_attributes``
    adds e.g. ``data-*`` attributes per row."""
    body = []
    for index, row in enumerate(rows):
        attrs: dict[str, Any] = dict(row_attributes[index]) if row_attributes is not None else {}
        body.append(html.Tr([html.Td(cell) for cell in row], **attrs))
    extra: dict[str, Any] = {} if id is None else {"id": id}
    return html.Table(
        [html.Thead(html.Tr([html.Th(name) for name in header])), html.Tbody(body)],
        className=class_name,
        **extra,
    )


def now_utc() -> datetime:
    return datetime.now(UTC)
