"""The API client: bearer token, typed answers, typed errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from controlplane.client.http import (
    ControlPlaneClient,
    ControlPlaneUnreachable,
    Forbidden,
    NotFound,
    RouteNotServed,
    Unauthorized,
    Unavailable,
    UnreadableAnswer,
)
from dashboards.ui import describe_error
from tests.unit.dashboards.data import status

CAPACITY = {
    "services": [
        {
            "service": "inventory",
            "tier": "critical",
            "policy": {
                "min_replicas": 3,
                "max_replicas": 20,
                "target_cpu_percent": 70,
                "requests": {"cpu": "200m", "memory": "512Mi"},
                "limits": {"cpu": "1000m", "memory": "2Gi"},
            },
            "live": None,
            "observed_at": None,
        }
    ],
    "error": "no orchestrator configured",
}
DR = {
    "databases": [
        {
            "database": "inventory",
            "tier": "critical",
            "rto_s": 900,
            "rpo_s": 300,
            "primary": "pg1",
            "replicas": None,
            "error": "no database nodes configured",
            "drills": [],
            "last_restore_validation": None,
        }
    ]
}


def _client(routes: dict[tuple[str, str], tuple[int, Any]], seen: list[httpx.Request]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body = routes.get(
            (request.method, request.url.path), (404, {"detail": "Not Found"})
        )
        return httpx.Response(status, content=json.dumps(body))

    return ControlPlaneClient(
        base_url="http://cp.test/", token="cpt_secret", transport=httpx.MockTransport(handler)
    )


def test_requests_carry_the_token_and_answers_are_typed() -> None:
    seen: list[httpx.Request] = []
    client = _client(
        {
            ("GET", "/api/v1/me"): (200, {"name": "console", "role": "operator"}),
            ("GET", "/api/v1/capacity"): (200, CAPACITY),
            ("GET", "/api/v1/dr"): (200, DR),
            ("PUT", "/api/v1/actions/kill-switch"): (
                200,
                {
                    "kill_switch": True,
                    "changed_at": "2026-11-21T10:00:00Z",
                    "changed_by": "op",
                    "reason": "incident",
                },
            ),
        },
        seen,
    )
    me = client.me()
    assert me.is_operator
    assert seen[0].headers["authorization"] == "Bearer cpt_secret"
    capacity = client.capacity()
    assert capacity.services[0].live is None
    assert capacity.error == "no orchestrator configured"
    assert client.dr().databases[0].replicas is None
    state = client.set_kill_switch(enabled=True, reason="incident")
    assert state.kill_switch is True
    assert json.loads(seen[-1].content) == {"enabled": True, "reason": "incident"}


def test_slo_ids_are_quoted_in_paths() -> None:
    seen: list[httpx.Request] = []
    client = _client({}, seen)
    with pytest.raises(RouteNotServed):
        client.slo("inventory/read latency")
    assert seen[0].url.raw_path.decode().startswith("/api/v1/slos/inventory%2Fread%20latency")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"detail": "unknown or revoked token"}, Unauthorized),
        (403, {"detail": "this route needs the operator role"}, Forbidden),
        (404, {"detail": "no evaluation of SLO 'x'"}, NotFound),
        (404, {"detail": "Not Found"}, RouteNotServed),
        (503, {"detail": "the control plane store is unavailable"}, Unavailable),
    ],
)
def test_error_statuses_become_typed_errors(
    status: int, body: dict[str, str], error: type[Exception]
) -> None:
    client = _client({("GET", "/api/v1/slos/x"): (status, body)}, [])
    with pytest.raises(error) as raised:
        client.slo("x")
    assert body["detail"] in str(raised.value)


def test_a_route_the_control_plane_lacks_is_named() -> None:
    client = _client({}, [])
    with pytest.raises(RouteNotServed) as raised:
        client.action_state()
    assert describe_error(raised.value) == (
        "this control plane does not serve GET /api/v1/actions/state (yet)"
    )


def test_an_unreachable_control_plane_says_so() -> None:
    client = ControlPlaneClient(base_url="http://127.0.0.1:9", token="t", timeout=2)
    with pytest.raises(ControlPlaneUnreachable) as raised:
        client.slos()
    assert describe_error(raised.value).startswith("control plane unreachable")


def test_an_unreadable_answer_is_an_error_not_an_empty_list() -> None:
    client = _client({("GET", "/api/v1/slos"): (200, [{"slo_id": "x"}])}, [])
    with pytest.raises(UnreadableAnswer):
        client.slos()


def test_the_slo_list_is_asked_for_with_its_etag_and_kept_while_unchanged() -> None:
    seen: list[httpx.Request] = []
    answers = [
        httpx.Response(200, json=[status("a").model_dump(mode="json")], headers={"ETag": '"v1"'}),
        httpx.Response(304, headers={"ETag": '"v1"'}),
        httpx.Response(200, json=[], headers={"ETag": '"v2"'}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    client = ControlPlaneClient(
        base_url="http://cp.test", token="t", transport=httpx.MockTransport(handler)
    )
    first = client.slos()
    assert "if-none-match" not in seen[0].headers
    assert client.slos() is first  # 304: the same list, not parsed again
    assert seen[1].headers["if-none-match"] == '"v1"'
    assert client.slos() == []
    assert seen[2].headers["if-none-match"] == '"v1"'
