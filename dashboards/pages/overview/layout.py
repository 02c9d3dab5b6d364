"""Overview: every SLO as a row, worst first, with filters that survive the auto-refresh."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from dashboards.ui import loading

__all__ = ["REFRESH_COUNT", "OverviewIds", "layout"]

#: Attribute of the "updated" stamp counting the refreshes this page has drawn: it changes on
#: every refresh, where the stamp's whole seconds may not (browser tests and the benchmark wait
#: on it).
REFRESH_COUNT = "data-refreshes"


class OverviewIds:
    SERVICE_FILTER = "overview-service-filter"
    TIER_FILTER = "overview-tier-filter"
    REFRESH = "overview-refresh"
    REFRESH_BUTTON = "overview-refresh-button"
    UPDATED = "overview-updated"
    SUMMARY = "overview-summary"
    #: Empty / error / loading states of the table (Dash children).
    TABLE = "overview-table"
    TABLE_LOADING = "overview-table-loading"
    #: The table itself: escaped HTML from the server, placed by a clientside callback.
    TABLE_HTML = "overview-table-html"
    TABLE_HOST = "overview-table-host"
    #: Digest of the table the browser shows: an unchanged table is not sent again.
    TABLE_DIGEST = "overview-table-digest"
    #: SLOs whose sparkline history is still to be fetched (set by the refresh).
    MISSING = "overview-missing-history"


def layout(*, refresh_seconds: float) -> html.Div:
    refreshes: dict[str, Any] = {REFRESH_COUNT: 0}
    return html.Div(
        [
            html.H2("SLO overview"),
            html.Div(
                [
                    html.Label(
                        [
                            "Service",
                            dcc.Dropdown(
                                id=OverviewIds.SERVICE_FILTER,
                                multi=True,
                                placeholder="all services",
                                persistence=True,
                                persistence_type="session",
                            ),
                        ],
                        className="filter",
                    ),
                    html.Label(
                        [
                            "Tier",
                            dcc.Dropdown(
                                id=OverviewIds.TIER_FILTER,
                                multi=True,
                                placeholder="all tiers",
                                persistence=True,
                                persistence_type="session",
                            ),
                        ],
                        className="filter",
                    ),
                    html.Button("Refresh now", id=OverviewIds.REFRESH_BUTTON, n_clicks=0),
                    html.Span(f"auto-refresh every {refresh_seconds:g} s · ", className="muted"),
                    html.Span(
                        "not loaded yet", id=OverviewIds.UPDATED, className="muted", **refreshes
                    ),
                ],
                className="toolbar",
            ),
            html.Div(id=OverviewIds.SUMMARY, className="summary"),
            loading(
                html.Div(
                    html.Div("Loading SLOs…", className="state state-loading"),
                    id=OverviewIds.TABLE,
                ),
                id=OverviewIds.TABLE_LOADING,
            ),
            html.Div(id=OverviewIds.TABLE_HOST, className="overview-table"),
            dcc.Store(id=OverviewIds.TABLE_HTML),
            dcc.Store(id=OverviewIds.TABLE_DIGEST),
            dcc.Interval(id=OverviewIds.REFRESH, interval=int(refresh_seconds * 1000)),
            dcc.Store(id=OverviewIds.MISSING),
        ],
        className="page page-overview",
    )
