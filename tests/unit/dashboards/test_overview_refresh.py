"""The overview's refresh: an unchanged table is neither drawn again nor sent again; every
refresh is counted, so a browser can tell that one finished."""

from __future__ import annotations

from datetime import timedelta

import httpx
from dash import Dash, no_update

from controlplane.client.http import ControlPlaneClient
from dashboards.app import create_app
from dashboards.config import DashboardSettings
from dashboards.history import Point
from dashboards.pages.overview.callbacks import DrawnTables, _table_key, _unless_shown
from dashboards.pages.overview.layout import REFRESH_COUNT, OverviewIds
from dashboards.status import worst_first
from tests.unit.dashboards.data import NOW, status


def _series(*minutes_ago: int) -> list[Point]:
    return [
        Point(at=NOW - timedelta(minutes=m), sli=0.999, budget_remaining=0.5) for m in minutes_ago
    ]


def test_the_table_key_changes_only_with_what_the_table_shows() -> None:
    items = worst_first([status("a"), status("b")])
    key = _table_key(items, {"a": _series(2, 1)})
    assert _table_key(worst_first([status("a"), status("b")]), {"a": _series(2, 1)}) == key
    newer = worst_first([status("a", evaluated_at=NOW + timedelta(seconds=30)), status("b")])
    assert _table_key(newer, {"a": _series(2, 1)}) != key
    assert _table_key(items, {"a": _series(2, 1, 0)}) != key  # the sparkline grew
    assert _table_key(items, {"b": _series(2, 1)}) != key  # the other row has it
    stale = worst_first([status("a", stale=True), status("b")])
    assert _table_key(stale, {"a": _series(2, 1)}) != key


def test_a_drawn_table_is_kept_and_not_sent_when_the_browser_has_it() -> None:
    drawn = DrawnTables(most=2)
    table, digest = drawn.keep("k1", "<table>1</table>")
    assert drawn.get("k1") == (table, digest)
    drawn.keep("k2", "<table>2</table>")
    drawn.keep("k3", "<table>3</table>")
    assert drawn.get("k1") is None  # the oldest went
    assert _unless_shown(table, digest, None) == (table, digest)
    assert _unless_shown(table, digest, digest) == (no_update, no_update)
    other = drawn.keep("k4", "<table>4</table>")
    assert other[1] != digest


def _refresh(app: Dash, *, clicks: int, count: int) -> tuple[str, int]:
    """One click on "Refresh now" as the browser posts it: the stamp and the refresh count."""
    key = next(key for key in app.callback_map if f"{OverviewIds.UPDATED}.{REFRESH_COUNT}" in key)
    callback = app.callback_map[key]
    values = {
        (OverviewIds.REFRESH_BUTTON, "n_clicks"): clicks,
        (OverviewIds.UPDATED, REFRESH_COUNT): count,
    }
    body = {
        "output": key,
        "outputs": [
            {"id": part.split(".")[0], "property": part.split(".", 1)[1]}
            for part in key.strip(".").split("...")
        ],
        "inputs": [
            {**item, "value": values.get((item["id"], item["property"]))}
            for item in callback["inputs"]
        ],
        "state": [
            {**item, "value": values.get((item["id"], item["property"]))}
            for item in callback["state"]
        ],
        "changedPropIds": [f"{OverviewIds.REFRESH_BUTTON}.n_clicks"],
    }
    answer = app.server.test_client().post("/_dash-update-component", json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    updated = answer.get_json()["response"][OverviewIds.UPDATED]
    return updated["children"], updated[REFRESH_COUNT]


def test_every_refresh_counts_one_more_even_within_the_same_second() -> None:
    unreachable = httpx.MockTransport(lambda request: httpx.Response(503))
    client = ControlPlaneClient(base_url="http://cp.test", token="t", transport=unreachable)
    app = create_app(client=client, settings=DashboardSettings(token="t"))
    stamp, count = _refresh(app, clicks=1, count=0)
    assert stamp.startswith("failed at ")  # whole seconds: the next one may read the same
    assert count == 1
    assert _refresh(app, clicks=2, count=count)[1] == 2
