"""Sparkline series: fetched once (one request for all SLOs), then extended from /slos without
history requests."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from controlplane.client.http import ControlPlaneClient
from dashboards.history import RecentHistory
from slo.series import thin
from tests.unit.dashboards.data import NOW, status

BATCH = "/api/v1/slos/history"


def _history(*, until_minutes_ago: int = 0) -> list[dict[str, Any]]:
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


def _batch(slo_ids: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "slo_id": slo_id,
            "points": [
                {key: point[key] for key in ("at", "state", "sli", "budget_remaining")}
                for point in reversed(_history())  # oldest first
            ],
        }
        for slo_id in slo_ids
    ]


def _client(
    requests: list[str],
    urls: list[httpx.URL] | None = None,
    *,
    known: list[str] | None = None,
    batch_served: bool = True,
) -> ControlPlaneClient:
    """A control plane whose SLOs all have 10 evaluations a minute apart (``known``: the SLOs
    the batch route lists; all of them by default)."""

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if urls is not None:
            urls.append(request.url)
        if request.url.path == BATCH:
            if not batch_served:  # FastAPI's answer for a route it does not have
                return httpx.Response(404, json={"detail": "Not Found"})
            return httpx.Response(200, content=json.dumps(_batch(known or [])))
        return httpx.Response(200, content=json.dumps(_history()))

    return ControlPlaneClient(
        base_url="http://cp.test", token="t", transport=httpx.MockTransport(handler)
    )


def _recent(
    requests: list[str],
    urls: list[httpx.URL] | None = None,
    *,
    known: list[str] | None = None,
    batch_served: bool = True,
    **options: Any,
) -> RecentHistory:
    values: dict[str, Any] = {"window": timedelta(hours=1), "points": 50, "workers": 4}
    values.update(options)
    client = _client(requests, urls, known=known, batch_served=batch_served)
    return RecentHistory(client=client, **values)


def test_first_call_fetches_every_slo_in_one_request_then_refreshes_fetch_nothing() -> None:
    requests: list[str] = []
    urls: list[httpx.URL] = []
    slo_ids = [f"slo-{n}" for n in range(20)]
    recent = _recent(requests, urls, known=slo_ids[:-1])  # the last has no evaluation yet
    statuses = [status(slo_id) for slo_id in slo_ids]
    first = recent.series(statuses, now=NOW)
    assert requests == [BATCH]
    assert urls[0].params["points"] == "50"
    assert urls[0].params["since"] == (NOW - timedelta(hours=1)).isoformat()
    assert urls[0].params.get_list("slo") == slo_ids  # only the SLOs drawn
    assert recent.last_fetches == 20
    assert [p.at for p in first["slo-3"]] == sorted(p.at for p in first["slo-3"])
    assert first["slo-3"][-1].budget_remaining == 0.5
    assert first["slo-19"] == []

    later = NOW + timedelta(minutes=1)
    newer = [status(f"slo-{n}", evaluated_at=later, budget_remaining=0.49) for n in range(19)]
    second = recent.series(newer, now=later)
    assert requests == [BATCH]  # no new request
    assert recent.last_fetches == 0
    assert second["slo-3"][-1].at == later
    assert second["slo-3"][-1].budget_remaining == 0.49
    assert len(second["slo-3"]) == 11


def test_a_long_list_of_slos_is_asked_for_in_parts_the_control_plane_takes() -> None:
    requests: list[str] = []
    urls: list[httpx.URL] = []
    slo_ids = [f"slo-{n:03d}" for n in range(250)]
    recent = _recent(requests, urls, known=slo_ids)
    found = recent.series([status(slo_id) for slo_id in slo_ids], now=NOW)
    assert requests == [BATCH] * 3
    assert [len(url.params.get_list("slo")) for url in urls] == [100, 100, 50]
    assert [slo for url in urls for slo in url.params.get_list("slo")] == slo_ids
    assert len(found) == 250


def test_a_few_missing_series_are_fetched_one_by_one() -> None:
    requests: list[str] = []
    recent = _recent(requests)
    recent.series([status("a"), status("b")], now=NOW)
    assert sorted(requests) == ["/api/v1/slos/a/history", "/api/v1/slos/b/history"]


def test_a_control_plane_without_the_batch_route_is_asked_per_slo_from_then_on() -> None:
    requests: list[str] = []
    recent = _recent(requests, batch_served=False, workers=1)
    statuses = [status(f"slo-{n}") for n in range(3)]
    found = recent.series(statuses, now=NOW)
    assert requests[0] == BATCH
    assert sorted(requests[1:]) == [f"/api/v1/slos/slo-{n}/history" for n in range(3)]
    assert len(found["slo-2"]) == 10
    recent.series([status(f"new-{n}") for n in range(3)], now=NOW)
    assert BATCH not in requests[4:]


def test_a_gap_in_the_series_is_fetched_again() -> None:
    requests: list[str] = []
    recent = _recent(requests)
    recent.series([status("a"), status("b")], now=NOW)
    later = NOW + timedelta(minutes=10)  # spacing is 1 min: a hole
    recent.series([status("a", evaluated_at=later)], now=later)
    assert requests.count("/api/v1/slos/a/history") == 2
    assert recent.last_fetches == 1


def test_without_cache_or_batch_every_refresh_reloads_every_history() -> None:
    requests: list[str] = []
    recent = _recent(requests, cache=False, batch=False, workers=1)
    statuses = [status(f"slo-{n}") for n in range(5)]
    recent.series(statuses, now=NOW)
    recent.series(statuses, now=NOW)
    assert len(requests) == 10
    assert BATCH not in requests


def test_the_window_is_kept_and_thinned_evenly_to_the_point_limit() -> None:
    requests: list[str] = []
    urls: list[httpx.URL] = []
    recent = _recent(requests, urls, window=timedelta(minutes=5), points=3)
    found = recent.series([status("a")], now=NOW)["a"]
    # Minutes 5 .. 0 ago are in the window (all of it is asked for); first, middle and last
    # are kept.
    assert [unquote(str(url.path)) for url in urls] == ["/api/v1/slos/a/history"]
    assert urls[0].params["since"] == (NOW - timedelta(minutes=5)).isoformat()
    assert [(NOW - point.at).total_seconds() / 60 for point in found] == [5, 3, 0]


@pytest.mark.parametrize(
    ("count", "most", "expected"),
    [(3, 5, [0, 1, 2]), (10, 4, [0, 3, 6, 9]), (7, 2, [0, 6])],
)
def test_thin_keeps_the_ends_and_spreads_the_rest(
    count: int, most: int, expected: list[int]
) -> None:
    assert thin(list(range(count)), most=most) == expected
