"""Sparkline series: fetched once, then extended from /slos without history requests."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import httpx

from dashboards.client import ControlPlaneClient
from dashboards.history import RecentHistory
from tests.unit.dashboards.data import NOW, status


def _history(slo_id: str, *, until_minutes_ago: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": minutes,
            "at": (NOW - timedelta(minutes=minutes)).isoformat(),
            "state": "ok",
            "sli": 0.999,
            "objective": 0.99,
            "budget_remaining": 0.5 + minutes / 100,
            "burn_rates": {},
            "no_data_reason": None,
        }
        for minutes in range(until_minutes_ago, until_minutes_ago + 10)  # newest first
    ]


def _client(requests: list[str], urls: list[httpx.URL] | None = None) -> ControlPlaneClient:
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if urls is not None:
            urls.append(request.url)
        slo_id = unquote(request.url.path.split("/")[-2])
        return httpx.Response(200, content=json.dumps(_history(slo_id)))

    return ControlPlaneClient(
        base_url="http://cp.test", token="t", transport=httpx.MockTransport(handler)
    )


def _recent(
    requests: list[str], urls: list[httpx.URL] | None = None, **options: Any
) -> RecentHistory:
    values: dict[str, Any] = {"window": timedelta(hours=1), "points": 50, "workers": 4}
    values.update(options)
    return RecentHistory(client=_client(requests, urls), **values)


def test_first_call_fetches_every_slo_in_parallel_then_refreshes_fetch_nothing() -> None:
    requests: list[str] = []
    recent = _recent(requests)
    statuses = [status(f"slo-{n}") for n in range(20)]
    first = recent.series(statuses, now=NOW)
    assert len(requests) == 20
    assert recent.last_fetches == 20
    assert [p.at for p in first["slo-3"]] == sorted(p.at for p in first["slo-3"])
    assert first["slo-3"][-1].budget_remaining == 0.5

    later = NOW + timedelta(minutes=1)
    newer = [status(f"slo-{n}", evaluated_at=later, budget_remaining=0.49) for n in range(20)]
    second = recent.series(newer, now=later)
    assert len(requests) == 20  # no new request
    assert recent.last_fetches == 0
    assert second["slo-3"][-1].at == later
    assert second["slo-3"][-1].budget_remaining == 0.49
    assert len(second["slo-3"]) == 11


def test_a_gap_in_the_series_is_fetched_again() -> None:
    requests: list[str] = []
    recent = _recent(requests)
    recent.series([status("a"), status("b")], now=NOW)
    later = NOW + timedelta(minutes=10)  # spacing is 1 min: a hole
    recent.series([status("a", evaluated_at=later)], now=later)
    assert requests.count("/api/v1/slos/a/history") == 2
    assert recent.last_fetches == 1


def test_without_cache_every_refresh_reloads_every_history() -> None:
    requests: list[str] = []
    recent = _recent(requests, cache=False, workers=1)
    statuses = [status("a"), status("b")]
    recent.series(statuses, now=NOW)
    recent.series(statuses, now=NOW)
    assert len(requests) == 4


def test_the_window_and_the_point_limit_are_respected() -> None:
    requests: list[str] = []
    urls: list[httpx.URL] = []
    recent = _recent(requests, urls, window=timedelta(minutes=5), points=3)
    found = recent.series([status("a")], now=NOW)["a"]
    assert len(found) == 3
    assert all(point.at >= NOW - timedelta(minutes=5) for point in found)
    assert urls[0].params["limit"] == "3"
    assert urls[0].params["since"] == (NOW - timedelta(minutes=5)).isoformat()
