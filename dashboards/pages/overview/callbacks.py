"""Overview callbacks. The search, filters and order are inputs, never outputs, so a refresh
keeps them.

* ``view`` (in the browser): search, filters, order and the pager buttons make one view (a
  new search, filter or order goes back to page 1);
* ``refresh`` (interval, button or a new view): reads ``/slos`` (one request for every SLO),
  filters and orders them all, and draws only the page asked for, at once, with the sparklines
  it already keeps; the page's SLOs whose history is not kept yet are handed to
* ``fill``: fetches those histories (one request for the page) and draws the page again,
  complete, from the statuses the refresh read (no second ``/slos``).

A cold console therefore shows the first page after one request and its sparklines a moment
later; with 2,000 SLOs the browser holds one page of rows, and the console builds and sends one
page. A table the browser already shows (same digest) is not sent again: an auto-refresh
without new evaluations answers a few hundred bytes. With the history cache off (the benchmark's
baseline) ``refresh`` fetches the page's histories itself before drawing anything.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from dash import Dash, Input, Output, State, no_update

from controlplane.client.http import ClientError, ControlPlaneClient
from controlplane.client.models import SLOStatus
from dashboards.history import Point, RecentHistory
from dashboards.pages.overview.layout import REFRESH_COUNT, OverviewIds
from dashboards.pages.overview.views import (
    NO_TIER,
    Page,
    View,
    burn_windows,
    overview_table_html,
    page_of,
    pager_text,
    select,
    stamp,
    summary,
)
from dashboards.ui import duration_text, empty_state, error_state, now_utc, utc

__all__ = ["register"]

#: Makes the view from the controls; a pager button moves one page (within the pages the last
#: refresh drew), anything else starts again at page 1.
VIEW_FROM_CONTROLS = """
function (search, services, tiers, statuses, sort, previous, next, drawn) {
    const fired = (window.dash_clientside.callback_context.triggered || [])
        .map(item => item.prop_id.split(".")[0]);
    const current = (drawn && drawn.page) || 1;
    const pages = Math.max((drawn && drawn.pages) || 1, 1);
    let page = 1;
    if (fired.includes(PREVIOUS)) { page = Math.max(1, current - 1); }
    else if (fired.includes(NEXT)) { page = Math.min(pages, current + 1); }
    return {search: search || "", services: services || [], tiers: tiers || [],
            statuses: statuses || [], sort: sort || "worst", page: page};
}
"""


def _options(values: set[str], *, none_label: str | None = None) -> list[dict[str, str]]:
    options = [{"label": value, "value": value} for value in sorted(values - {NO_TIER})]
    if none_label is not None and NO_TIER in values:
        options.append({"label": none_label, "value": NO_TIER})
    return options


def register(
    app: Dash, *, client: ControlPlaneClient, history: RecentHistory, page_size: int = 50
) -> None:
    sparkline_label = f"Budget, last {duration_text(history.window.total_seconds())}"
    drawn = DrawnTables()
    snapshots = Snapshots()

    def draw(page: Page, windows: list[str], series: dict[str, list[Point]]) -> tuple[str, str]:
        """The table and its digest; the same inputs are not drawn twice."""
        key = (_table_key(page.items, series), tuple(windows))
        found = drawn.get(key)
        if found is not None:
            return found
        table = overview_table_html(
            page.items, series=series, windows=windows, sparkline_label=sparkline_label
        )
        return drawn.keep(key, table)

    selected = Selected()

    def cut(statuses: list[SLOStatus], view: View) -> tuple[list[Any], Page, list[str]]:
        """Every SLO the view keeps, the page drawn, and the burn windows of all of them (the
        columns stay the same from page to page)."""
        items, windows = selected.get(statuses, view)
        return items, page_of(items, page=view.page, size=page_size), windows

    app.clientside_callback(  # type: ignore[no-untyped-call]
        VIEW_FROM_CONTROLS.replace("PREVIOUS", repr(OverviewIds.PREVIOUS)).replace(
            "NEXT", repr(OverviewIds.NEXT)
        ),
        Output(OverviewIds.VIEW, "data"),
        Input(OverviewIds.SEARCH, "value"),
        Input(OverviewIds.SERVICE_FILTER, "value"),
        Input(OverviewIds.TIER_FILTER, "value"),
        Input(OverviewIds.STATUS_FILTER, "value"),
        Input(OverviewIds.SORT, "value"),
        Input(OverviewIds.PREVIOUS, "n_clicks"),
        Input(OverviewIds.NEXT, "n_clicks"),
        State(OverviewIds.PAGE, "data"),
    )

    # Places the server's escaped table HTML (one string) into the host element: the
    # browser's HTML parser takes milliseconds where rows of Dash components take seconds.
    app.clientside_callback(  # type: ignore[no-untyped-call]
        """
        function (fragment) {
            const host = document.getElementById(HOST);
            if (host) { host.innerHTML = fragment || ""; }
            return window.dash_clientside.no_update;
        }
        """.replace("HOST", repr(OverviewIds.TABLE_HOST)),
        Output(OverviewIds.TABLE_HOST, "title"),
        Input(OverviewIds.TABLE_HTML, "data"),
    )

    @app.callback(
        Output(OverviewIds.TABLE, "children"),
        Output(OverviewIds.TABLE_HTML, "data"),
        Output(OverviewIds.TABLE_DIGEST, "data"),
        Output(OverviewIds.SUMMARY, "children"),
        Output(OverviewIds.UPDATED, "children"),
        Output(OverviewIds.SERVICE_FILTER, "options"),
        Output(OverviewIds.TIER_FILTER, "options"),
        Output(OverviewIds.MISSING, "data"),
        Output(OverviewIds.PAGER, "children"),
        Output(OverviewIds.PAGE, "data"),
        Output(OverviewIds.PREVIOUS, "disabled"),
        Output(OverviewIds.NEXT, "disabled"),
        Output(OverviewIds.UPDATED, REFRESH_COUNT),
        Input(OverviewIds.REFRESH, "n_intervals"),
        Input(OverviewIds.REFRESH_BUTTON, "n_clicks"),
        Input(OverviewIds.VIEW, "data"),
        State(OverviewIds.TABLE_DIGEST, "data"),
        State(OverviewIds.UPDATED, REFRESH_COUNT),
    )
    def refresh(
        _ticks: int | None,
        _clicks: int | None,
        view: dict[str, Any] | None,
        shown_digest: str | None,
        count: int | None,
    ) -> tuple[Any, ...]:
        return (*page(View.from_data(view), shown_digest), (count or 0) + 1)

    def pager(found: Page | None) -> tuple[Any, ...]:
        if found is None:
            return "", None, True, True
        where = {"page": found.number, "pages": found.pages}
        return pager_text(found), where, found.number <= 1, found.number >= found.pages

    def page(view: View, shown_digest: str | None) -> tuple[Any, ...]:
        """Everything a refresh draws but the refresh count."""
        now = now_utc()
        try:
            statuses = client.slos()
        except ClientError as exc:
            failed = f"failed at {utc(now)}"
            return (
                error_state(exc), None, None, [], failed, no_update, no_update, no_update,
                *pager(None),
            )  # fmt: skip
        snapshot = snapshots.keep(statuses)
        service_options = _options({status.service for status in statuses})
        tier_options = _options(
            {status.tier or NO_TIER for status in statuses}, none_label="(no tier)"
        )
        options = (service_options, tier_options)
        if not statuses:
            message = empty_state("no SLOs defined: the control plane has not evaluated any SLO")
            return message, None, None, [], stamp(now), *options, no_update, *pager(None)
        items, found, windows = cut(statuses, view)
        counts = summary(items, total=len(statuses))
        if not items:
            message = empty_state("no SLO matches the search and the filters")
            return message, None, None, counts, stamp(now), *options, no_update, *pager(found)
        try:
            series, missing = _series(history, [status for status, _ in found.items], now=now)
        except ClientError as exc:
            return (
                error_state(exc), None, None, counts, stamp(now), *options, no_update,
                *pager(found),
            )  # fmt: skip
        # Only a refresh that left sparklines out triggers ``fill``.
        pending = {"snapshot": snapshot, "slos": missing} if missing else no_update
        table, digest = _unless_shown(*draw(found, windows, series), shown_digest)
        return None, table, digest, counts, stamp(now), *options, pending, *pager(found)

    @app.callback(
        Output(OverviewIds.TABLE_HTML, "data", allow_duplicate=True),
        Output(OverviewIds.TABLE_DIGEST, "data", allow_duplicate=True),
        Input(OverviewIds.MISSING, "data"),
        State(OverviewIds.VIEW, "data"),
        State(OverviewIds.TABLE_DIGEST, "data"),
        prevent_initial_call=True,
    )
    def fill(
        pending: dict[str, Any] | None, view: dict[str, Any] | None, shown_digest: str | None
    ) -> tuple[Any, Any]:
        if not pending:
            return no_update, no_update
        now = now_utc()
        try:
            # The statuses of the refresh that asked, unless a newer refresh read others.
            statuses = snapshots.latest(pending.get("snapshot"))
            if statuses is None:
                statuses = client.slos()
            _, found, windows = cut(statuses, View.from_data(view))
            series = history.series([status for status, _ in found.items], now=now)
        except ClientError:
            # The table stays, without those sparklines; the next refresh retries.
            return no_update, no_update
        if not found.items:
            return no_update, no_update
        return _unless_shown(*draw(found, windows, series), shown_digest)


class Selected:
    """The SLOs the last view kept, in its order, and their burn windows: while the client
    returns the same list (the control plane answered 304), a refresh or another page of the
    same view neither classifies nor sorts 2,000 SLOs again (thread-safe)."""

    def __init__(self) -> None:
        self._last: tuple[list[SLOStatus], View, list[Any], list[str]] | None = None
        self._lock = threading.Lock()

    def get(self, statuses: list[SLOStatus], view: View) -> tuple[list[Any], list[str]]:
        key = replace(view, page=1)
        with self._lock:
            last = self._last
        if last is not None and last[0] is statuses and last[1] == key:
            return last[2], last[3]
        items = select(statuses, key)
        windows = burn_windows([status for status, _ in items])
        with self._lock:
            self._last = (statuses, key, items, windows)
        return items, windows


class Snapshots:
    """The last ``/slos`` answer a refresh read, by a key the browser hands back to ``fill``
    (thread-safe): a key that is no longer the latest finds nothing, so ``fill`` never draws
    statuses older than a refresh that came after."""

    def __init__(self) -> None:
        self._latest: tuple[str, list[SLOStatus]] | None = None
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def keep(self, statuses: list[SLOStatus]) -> str:
        with self._lock:
            key = f"{next(self._numbers)}"
            self._latest = (key, statuses)
        return key

    def latest(self, key: object) -> list[SLOStatus] | None:
        with self._lock:
            if self._latest is None or self._latest[0] != key:
                return None
            return self._latest[1]


class DrawnTables:
    """The last few tables drawn, by what they were drawn from (thread-safe): an auto-refresh
    without a new evaluation neither builds nor hashes the table again."""

    def __init__(self, *, most: int = 16) -> None:
        self._tables: OrderedDict[Hashable, tuple[str, str]] = OrderedDict()
        self._most = most
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[str, str] | None:
        with self._lock:
            found = self._tables.get(key)
            if found is not None:
                self._tables.move_to_end(key)
            return found

    def keep(self, key: Hashable, table: str) -> tuple[str, str]:
        digest = hashlib.blake2b(table.encode("utf-8"), digest_size=16).hexdigest()
        with self._lock:
            self._tables[key] = (table, digest)
            while len(self._tables) > self._most:
                self._tables.popitem(last=False)
        return table, digest


def _table_key(items: Sequence[tuple[SLOStatus, Any]], series: dict[str, list[Point]]) -> Hashable:
    """What a table shows: each row's evaluation (an SLO's evaluation changes only with a new
    instant), its stale mark and status, in order, and the extent of each sparkline."""
    rows = tuple((status.slo_id, status.evaluated_at, status.stale, kind) for status, kind in items)
    lines = tuple(
        None if points is None else (len(points), points[-1].at if points else None)
        for points in (series.get(status.slo_id) for status, _ in items)
    )
    return rows, lines


def _unless_shown(table: str, digest: str, shown_digest: str | None) -> tuple[Any, Any]:
    """The table and its digest, or ``no_update`` twice when the browser shows it already."""
    if digest == shown_digest:
        return no_update, no_update
    return table, digest


def _series(
    history: RecentHistory, statuses: Sequence[SLOStatus], *, now: datetime
) -> tuple[dict[str, list[Point]], list[str]]:
    """What can be drawn now, and the SLOs to fetch afterwards (cache on); everything at once
    (cache off)."""
    if not history.cache:
        return history.series(statuses, now=now), []
    found, missing = history.known(statuses, now=now)
    return found, [status.slo_id for status in missing]
