"""The trace and log routes without their sources: explicit no_data, never an empty list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.wiring import create_app
from controlplane.core.processes import free_ports
from controlplane.core.security import Role
from controlplane.runtime import Runtime
from controlplane.store.evaluations import EvaluationRecord, record_evaluations
from controlplane.store.tokens import create_token
from tests.unit.controlplane.asgi import AppClient
from tests.unit.controlplane.conftest import settings_for

NOW = datetime.now(UTC)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[AppClient, dict[str, str]]]:
    closed = free_ports(2)  # nothing listens there
    settings = settings_for(
        tmp_path,
        sources={
            "jaeger_url": f"http://127.0.0.1:{closed[0]}",
            "elasticsearch_url": f"http://127.0.0.1:{closed[1]}",
            "source_retry_attempts": 1,
            "source_timeout_seconds": 2,
        },
    )
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    with AppClient(app) as client:
        with runtime.database.writer() as session:
            _, secret = create_token(session, name="viewer", role=Role.VIEWER, at=NOW)
            record_evaluations(
                session,
                evaluations=[
                    EvaluationRecord(
                        slo_id="read-latency",
                        service="inventory",
                        at=NOW,
                        state="ok",
                        sli=0.99,
                        objective=0.99,
                        details={"latency_threshold_s": 0.25},
                    )
                ],
            )
        yield client, {"Authorization": f"Bearer {secret}"}


def test_a_jaeger_that_is_down_is_no_data_with_the_reason(
    api: tuple[AppClient, dict[str, str]],
) -> None:
    client, headers = api
    answer = client.get("/api/v1/slos/read-latency/traces?kind=slow", headers=headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["traces"] == []
    assert body["no_data"]["source"] == "jaeger"
    assert body["no_data"]["reason"] == "source_unavailable"
    assert body["min_duration_ms"] == 250.0
    assert body["min_duration_from"] == "slo_threshold"
    assert body["service"] == "inventory"
    start = datetime.fromisoformat(body["start"])
    end = datetime.fromisoformat(body["end"])
    assert end - start == timedelta(hours=1)


def test_an_elasticsearch_that_is_down_is_no_data_with_the_reason(
    api: tuple[AppClient, dict[str, str]],
) -> None:
    client, headers = api
    answer = client.get(f"/api/v1/traces/{'ab' * 16}/logs", headers=headers)
    assert answer.status_code == 200
    assert answer.json()["no_data"]["reason"] == "source_unavailable"
    assert answer.json()["lines"] == []


def test_bad_requests(api: tuple[AppClient, dict[str, str]]) -> None:
    client, headers = api
    assert client.get("/api/v1/slos/nope/traces", headers=headers).status_code == 404
    assert client.get("/api/v1/traces/not-hex/logs", headers=headers).status_code == 422
    backwards = "start=2026-11-21T10:00:00Z&end=2026-11-21T09:00:00Z"
    assert (
        client.get(f"/api/v1/slos/read-latency/traces?{backwards}", headers=headers).status_code
        == 422
    )
    assert (
        client.get("/api/v1/slos/read-latency/traces?kind=odd", headers=headers).status_code == 422
    )
    assert client.get("/api/v1/slos/read-latency/traces").status_code == 401
