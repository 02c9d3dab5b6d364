"""Overview: every SLO as a row, worst first, one page at a time, with a search, filters and an
order that survive the auto-refresh."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from dashboards.pages.overview.views import DEFAULT_SORT, SORTS
from dashboards.status import STATUS_LABELS
from dashboards.ui import loading

__all__ = ["REFRESH_COUNT", "OverviewIds", "layout"]

#: Attribute of the "updated" stamp counting the refreshes this page has drawn: it changes on
#: every refresh, where the stamp's whole seconds may not (browser tests and the benchmark wait
#: on it).
REFRESH_COUNT = "data-refreshes"


class OverviewIds:
    SEARCH = "overview-search"
    SERVICE_FILTER = "overview-service-filter"
    TIER_FILTER = "overview-tier-filter"
    STATUS_FILTER = "overview-status-filter"
    SORT = "overview-sort"
    #: What the person asked for (search, filters, order, page), set in the browser.
    VIEW = "overview-view"
    PREVIOUS = "overview-previous-page"
    NEXT = "overview-next-page"
    PAGER = "overview-pager"
    #: The page drawn and the number of pages (set by the refresh; the pager buttons read it).
    PAGE = "overview-page"
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


def _pager() -> html.Div:
    """Previous / next page and which rows the page holds."""
    return html.Div(
        [
            html.Button("‹ Previous", id=OverviewIds.PREVIOUS, n_clicks=0, disabled=True),
            html.Span("", id=OverviewIds.PAGER, className="muted"),
            html.Button("Next ›", id=OverviewIds.NEXT, n_clicks=0, disabled=True),
        ],
        className="pager",
    )


def _dropdown(
    label: str, control: str, *, className: str = "filter", multi: bool = True, **options: Any
) -> html.Label:
    """A labelled dropdown whose choice survives a reload of the page (session storage)."""
    dropdown = dcc.Dropdown(
        id=control, multi=multi, persistence=True, persistence_type="session", **options
    )
    return html.Label([label, dropdown], className=className)


def layout(*, refresh_seconds: float) -> html.Div:
    refreshes: dict[str, Any] = {REFRESH_COUNT: 0}
    return html.Div(
        [
            html.H2("SLO overview"),
            html.Div(
                [
                    html.Label(
                        [
                            "Search",
                            dcc.Input(
                                id=OverviewIds.SEARCH,
                                type="search",
                                placeholder="SLO id or service contains…",
                                debounce=0.3,
                                persistence=True,
                                persistence_type="session",
                            ),
                        ],
                        className="filter filter-search",
                    ),
                    _dropdown("Service", OverviewIds.SERVICE_FILTER, placeholder="all services"),
                    _dropdown("Tier", OverviewIds.TIER_FILTER, placeholder="all tiers"),
                    _dropdown(
                        "Status",
                        OverviewIds.STATUS_FILTER,
                        placeholder="every status",
                        options=[{"label": v, "value": k} for k, v in STATUS_LABELS.items()],
                    ),
                    _dropdown(
                        "Sort by",
                        OverviewIds.SORT,
                        options=[{"label": v, "value": k} for k, v in SORTS.items()],
                        value=DEFAULT_SORT,
                        clearable=False,
                        multi=False,
                        className="filter filter-sort",
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
            _pager(),
            loading(
                html.Div(
                    html.Div("Loading SLOs…", className="state state-loading"),
                    id=OverviewIds.TABLE,
                ),
                id=OverviewIds.TABLE_LOADING,
            ),
            html.Div(id=OverviewIds.TABLE_HOST, className="overview-table"),
            dcc.Store(id=OverviewIds.VIEW),
            dcc.Store(id=OverviewIds.PAGE),
            dcc.Store(id=OverviewIds.TABLE_HTML),
            dcc.Store(id=OverviewIds.TABLE_DIGEST),
            dcc.Interval(id=OverviewIds.REFRESH, interval=int(refresh_seconds * 1000)),
            dcc.Store(id=OverviewIds.MISSING),
        ],
        className="page page-overview",
    )
