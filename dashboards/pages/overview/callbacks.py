"""Overview callbacks. The filters are inputs, never outputs, so a refresh keeps them.

* ``refresh`` (interval, button or filter change): reads ``/slos`` and draws the table at once
  with the sparklines it already keeps; the SLOs whose history is not kept yet are handed to
* ``fill``: fetches those histories (one request for all) and draws the table again, complete.

A cold console therefore shows every SLO after one request and the sparklines a moment later.
A table the browser already shows (same digest) is not sent again: an auto-refresh without new
evaluations answers a few hundred bytes. With the history cache off (the benchmark's baseline)
``refresh`` fetches every history itself before drawing anything.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any

from dash import Dash, Input, Output, State, no_update

from controlplane.client.http import ClientError, ControlPlaneClient
from controlplane.client.models import SLOStatus
from dashboards.history import Point, RecentHistory
from dashboards.pages.overview.layout import REFRESH_COUNT, OverviewIds
from dashboards.pages.overview.views import (
    NO_TIER,
    burn_windows,
    filter_statuses,
    overview_table_html,
    stamp,
    summary,
)
from dashboards.status import worst_first
from dashboards.ui import duration_text, empty_state, error_state, now_utc, utc

__all__ = ["register"]


def _options(values: set[str], *, none_label: str | None = None) -> list[dict[str, str]]:
    options = [{"label": value, "value": value} for value in sorted(values - {NO_TIER})]
    if none_label is not None and NO_TIER in values:
        options.append({"label": none_label, "value": NO_TIER})
    return options


def register(app: Dash, *, client: ControlPlaneClient, history: RecentHistory) -> None:
    sparkline_label = f"Budget, last {duration_text(history.window.total_seconds())}"

    def shown(
        statuses: Sequence[SLOStatus], services: list[str] | None, tiers: list[str] | None
    ) -> list[tuple[SLOStatus, Any]]:
        return filter_statuses(worst_first(statuses), services=services, tiers=tiers)

    drawn = DrawnTables()

    def draw(items: list[tuple[SLOStatus, Any]], series: dict[str, list[Point]]) -> tuple[str, str]:
        """The table and its digest; the same inputs are not drawn twice."""
        key = _table_key(items, series)
        found = drawn.get(key)
        if found is not None:
            return found
        table = overview_table_html(
            items,
            series=series,
            windows=burn_windows([status for status, _ in items]),
            sparkline_label=sparkline_label,
        )
        return drawn.keep(key, table)

    # Places the server's escaped table HTML (one string) into the host element: the
    # browser's HTML parser takes milliseconds where 200 rows of Dash components take seconds.
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
        Output(OverviewIds.UPDATED, REFRESH_COUNT),
        Input(OverviewIds.REFRESH, "n_intervals"),
        Input(OverviewIds.REFRESH_BUTTON, "n_clicks"),
        Input(OverviewIds.SERVICE_FILTER, "value"),
        Input(OverviewIds.TIER_FILTER, "value"),
        State(OverviewIds.TABLE_DIGEST, "data"),
        State(OverviewIds.UPDATED, REFRESH_COUNT),
    )
    def refresh(
        _ticks: int | None,
        _clicks: int | None,
        services: list[str] | None,
        tiers: list[str] | None,
        shown_digest: str | None,
        count: int | None,
    ) -> tuple[Any, ...]:
        return (*page(services, tiers, shown_digest), (count or 0) + 1)

    def page(
        services: list[str] | None, tiers: list[str] | None, shown_digest: str | None
    ) -> tuple[Any, ...]:
        """Everything a refresh draws but the refresh count."""
        now = now_utc()
        try:
            statuses = client.slos()
        except ClientError as exc:
            failed = f"failed at {utc(now)}"
            return error_state(exc), None, None, [], failed, no_update, no_update, no_update
        service_options = _options({status.service for status in statuses})
        tier_options = _options(
            {status.tier or NO_TIER for status in statuses}, none_label="(no tier)"
        )
        options = (service_options, tier_options)
        if not statuses:
            message = empty_state("no SLOs defined: the control plane has not evaluated any SLO")
            return message, None, None, [], stamp(now), *options, no_update
        items = shown(statuses, services, tiers)
        counts = summary(items, total=len(statuses))
        if not items:
            message = empty_state("no SLO matches the service / tier filters")
            return message, None, None, counts, stamp(now), *options, no_update
        try:
            series, missing = _series(history, [status for status, _ in items], now=now)
        except ClientError as exc:
            return error_state(exc), None, None, counts, stamp(now), *options, no_update
        # Only a refresh that left sparklines out triggers ``fill``.
        pending = {"at": now.isoformat(), "slos": missing} if missing else no_update
        table, digest = _unless_shown(*draw(items, series), shown_digest)
        return None, table, digest, counts, stamp(now), *options, pending

    @app.callback(
        Output(OverviewIds.TABLE_HTML, "data", allow_duplicate=True),
        Output(OverviewIds.TABLE_DIGEST, "data", allow_duplicate=True),
        Input(OverviewIds.MISSING, "data"),
        State(OverviewIds.SERVICE_FILTER, "value"),
        State(OverviewIds.TIER_FILTER, "value"),
        State(OverviewIds.TABLE_DIGEST, "data"),
        prevent_initial_call=True,
    )
    def fill(
        pending: dict[str, Any] | None,
        services: list[str] | None,
        tiers: list[str] | None,
        shown_digest: str | None,
    ) -> tuple[Any, Any]:
        if not pending:
            return no_update, no_update
        now = now_utc()
        try:
            statuses = client.slos()
            items = shown(statuses, services, tiers)
            series = history.series([status for status, _ in items], now=now)
        except ClientError:
            # The table stays, without those sparklines; the next refresh retries.
            return no_update, no_update
        if not items:
            return no_update, no_update
        return _unless_shown(*draw(items, series), shown_digest)


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
