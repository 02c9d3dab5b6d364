"""SLO detail: SLI and budget over time, burn rates against the alert factors, alerts and actions
on the same time axis, example traces from Jaeger and the log lines of a chosen trace."""

from __future__ import annotations

from dash import dcc, html

from dashboards.ui import loading

__all__ = ["RANGES", "DetailIds", "layout"]

#: Time range choices (label = value), the default first.
RANGES: tuple[str, ...] = ("24h", "1h", "6h", "7d", "30d")


class DetailIds:
    SLO_ID = "detail-slo-id"
    RANGE = "detail-range"
    HEADER = "detail-header"
    NOTE = "detail-note"
    SLI = "detail-sli"
    BUDGET = "detail-budget"
    BURN = "detail-burn"
    EVENTS = "detail-events"
    EVENTS_TABLE = "detail-events-table"
    CHARTS_LOADING = "detail-charts-loading"
    TRACE_WINDOW = "detail-trace-window"
    SLOW_TRACES = "detail-slow-traces"
    ERROR_TRACES = "detail-error-traces"
    TRACES_LOADING = "detail-traces-loading"
    LOGS_BUTTON = "detail-logs-button"
    LOGS = "detail-logs"
    LOGS_LOADING = "detail-logs-loading"


def layout(*, slo_id: str) -> html.Div:
    return html.Div(
        [
            dcc.Store(id=DetailIds.SLO_ID, data=slo_id),
            dcc.Link("← all SLOs", href="/", className="back"),
            html.H2(f"SLO {slo_id}"),
            html.Div(
                html.Div("Loading the SLO…", className="state state-loading"), id=DetailIds.HEADER
            ),
            html.Div(
                [
                    html.Span("Range ", className="muted"),
                    dcc.RadioItems(
                        id=DetailIds.RANGE,
                        options=[{"label": value, "value": value} for value in RANGES],
                        value=RANGES[0],
                        inline=True,
                        persistence=True,
                        persistence_type="session",
                    ),
                    html.Span(id=DetailIds.NOTE, className="muted"),
                ],
                className="toolbar",
            ),
            loading(
                html.Div(
                    [
                        html.Div(id=DetailIds.SLI, className="chart"),
                        html.Div(id=DetailIds.BUDGET, className="chart"),
                        html.Div(id=DetailIds.BURN, className="chart"),
                        html.Div(id=DetailIds.EVENTS, className="chart"),
                        html.Div(id=DetailIds.EVENTS_TABLE),
                    ],
                    className="charts",
                ),
                id=DetailIds.CHARTS_LOADING,
            ),
            html.H3("Example traces (Jaeger)"),
            html.Div(id=DetailIds.TRACE_WINDOW, className="muted"),
            loading(
                html.Div(
                    [
                        html.H4("Slowest"),
                        html.Div(
                            html.Div("Loading traces…", className="state state-loading"),
                            id=DetailIds.SLOW_TRACES,
                        ),
                        html.H4("With errors"),
                        html.Div(id=DetailIds.ERROR_TRACES),
                    ]
                ),
                id=DetailIds.TRACES_LOADING,
            ),
            html.H3("Log lines of the chosen trace (Elasticsearch)"),
            loading(
                html.Div(
                    html.Div(
                        "choose a trace above (“logs”) to see its log lines",
                        className="state state-empty",
                    ),
                    id=DetailIds.LOGS,
                ),
                id=DetailIds.LOGS_LOADING,
            ),
        ],
        className="page page-detail",
    )
