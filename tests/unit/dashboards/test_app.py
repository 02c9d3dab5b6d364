"""The layout brings the first page with it (from the page's address), so its callbacks start
one round trip earlier."""

from __future__ import annotations

import json

import httpx

from controlplane.client.http import ControlPlaneClient
from dashboards.app import ShellIds, create_app
from dashboards.config import DashboardSettings
from dashboards.pages.overview.layout import OverviewIds
from dashboards.pages.slo_detail.layout import DetailIds


def _layout(referrer: str | None) -> str:
    unreachable = httpx.MockTransport(lambda request: httpx.Response(503))
    client = ControlPlaneClient(base_url="http://cp.test", token="t", transport=unreachable)
    app = create_app(client=client, settings=DashboardSettings(token="t"))
    headers = {"Referer": referrer} if referrer is not None else {}
    answer = app.server.test_client().get("/_dash-layout", headers=headers)
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def _rendered(layout: str) -> object:
    """The path the layout says it holds the page of."""

    def find(node: object) -> object:
        if isinstance(node, dict):
            props = node.get("props", {})
            if isinstance(props, dict) and props.get("id") == ShellIds.RENDERED:
                return props.get("data")
            for value in node.values():
                found = find(value)
                if found != "absent":
                    return found
        if isinstance(node, list):
            for value in node:
                found = find(value)
                if found != "absent":
                    return found
        return "absent"

    return find(json.loads(layout))


def test_the_overview_comes_with_the_layout() -> None:
    layout = _layout("http://127.0.0.1:8050/")
    assert OverviewIds.TABLE_HTML in layout
    assert _rendered(layout) == "/"


def test_a_detail_page_comes_with_the_layout_under_its_own_path() -> None:
    layout = _layout("http://127.0.0.1:8050/slo/read-latency")
    assert DetailIds.SLO_ID in layout
    assert "read-latency" in layout
    assert _rendered(layout) == "/slo/read-latency"


def test_without_a_referrer_the_routing_callback_draws_the_page() -> None:
    layout = _layout(None)
    assert OverviewIds.TABLE_HTML not in layout
    assert _rendered(layout) is None
