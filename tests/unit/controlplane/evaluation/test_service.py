"""The scheduler inside the API: the leader evaluates on its interval, stores every SLO, the API
lists them and ``/metrics`` shows the burn per window; a follower evaluates nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.wiring import api_extensions
from controlplane.api.app import create_app
from controlplane.core.security import Role
from controlplane.evaluation.evaluator import SLOEvaluator
from controlplane.evaluation.metrics import ControlPlaneMetrics
from controlplane.evaluation.service import EvaluationService
from controlplane.runtime import Runtime
from controlplane.sources.base import SourceUnavailable
from controlplane.store.evaluations import evaluation_history
from controlplane.store.tokens import create_token
from tests.unit.controlplane.asgi import AppClient
from tests.unit.controlplane.conftest import settings_for
from tests.unit.controlplane.evaluation.memory import (
    EVERY_WINDOW,
    MemoryPrometheus,
    recorded,
)
from tests.unit.controlplane.evaluation.specs import native, slos

pytestmark = pytest.mark.unit

INTERVAL = 0.3


@dataclass
class Running:
    client: AppClient
    service: EvaluationService
    prometheus: MemoryPrometheus
    headers: dict[str, str]

    def get(self, path: str) -> Any:
        answer = self.client.get(path, headers=self.headers)
        assert answer.status_code == 200, answer.text
        return answer.json() if "json" in answer.headers["content-type"] else answer.text


def sample(exposition: str, series: str) -> float:
    """The value of one series in a Prometheus text exposition."""
    (line,) = [line for line in exposition.splitlines() if line.startswith(series + " ")]
    return float(line.rsplit(" ", 1)[1])


def eventually(check: Callable[[], Any], *, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not met within {timeout} s (last: {value!r})"
        time.sleep(0.05)


def start(tmp_path: Path, *, leader: bool) -> Iterator[Running]:
    settings = settings_for(
        tmp_path,
        evaluation={"evaluation_interval_seconds": INTERVAL},
        leader={"leader_election": leader},
    )
    runtime = Runtime.from_settings(settings)
    ratios = dict.fromkeys(EVERY_WINDOW, 0.0001)
    ratios.update(w1h=0.02, w5m=0.03)
    prometheus = MemoryPrometheus(recorded=recorded("availability", **ratios))
    metrics = ControlPlaneMetrics()
    service = EvaluationService(
        runtime=runtime,
        evaluator=SLOEvaluator(slos=slos(native("availability")), metrics=prometheus, logs=None),
        metrics=metrics,
        interval=INTERVAL,
    )
    app = create_app(
        settings,
        extensions=api_extensions(settings),
        services=[service],
        runtime=runtime,
        metrics=metrics,
    )
    with AppClient(app) as client:
        with runtime.database.writer() as session:
            _, secret = create_token(session, name="viewer", role=Role.VIEWER, at=datetime.now(UTC))
        yield Running(
            client=client,
            service=service,
            prometheus=prometheus,
            headers={"Authorization": f"Bearer {secret}"},
        )


@pytest.fixture
def leader(tmp_path: Path) -> Iterator[Running]:
    yield from start(tmp_path, leader=True)


def test_the_leader_evaluates_every_interval_and_the_api_shows_it(leader: Running) -> None:
    def evaluations() -> int:
        with leader.service.runtime.database.reader() as session:
            return len(evaluation_history(session, slo_id="availability"))

    eventually(lambda: evaluations() >= 3)
    (status,) = leader.get("/api/v1/slos")
    assert status["slo_id"] == "availability"
    assert status["state"] == "ok"
    assert status["stale"] is False
    assert status["burn_rates"]["1h"] == pytest.approx(20)
    assert status["details"]["plan"] == "recording_rules"

    exposition = leader.get("/metrics")
    burn = sample(
        exposition, 'controlplane_slo_burn_rate{service="inventory",slo="availability",window="5m"}'
    )
    assert burn == pytest.approx(30)
    assert (
        sample(
            exposition, 'controlplane_slo_state{service="inventory",slo="availability",state="ok"}'
        )
        == 1
    )
    assert "controlplane_evaluation_duration_seconds_count" in exposition
    assert "controlplane_is_leader 1.0" in exposition
    one = leader.get("/api/v1/slos/availability")  # the id is addressable as a path segment
    assert one["slo_id"] == "availability"


def test_a_failing_source_turns_the_slo_no_data_and_counts_the_error(leader: Running) -> None:
    eventually(lambda: leader.get("/api/v1/slos"))
    leader.prometheus.error = SourceUnavailable("prometheus", "connection refused")

    def no_data() -> dict[str, Any] | None:
        (status,) = leader.get("/api/v1/slos")
        return status if status["state"] == "no_data" else None

    status = eventually(no_data)
    assert status["no_data_reason"] == "source unavailable: prometheus: connection refused"
    assert status["sli"] is None
    assert status["budget_remaining"] is None
    exposition = leader.get("/metrics")
    assert 'controlplane_source_errors_total{source="prometheus",stage="evaluation"}' in (
        exposition
    )
    assert 'controlplane_evaluation_cycles_total{outcome="degraded"}' in exposition
    assert "controlplane_slo_burn_rate{" not in exposition  # no data: no number

    leader.prometheus.error = None
    eventually(lambda: leader.get("/api/v1/slos")[0]["state"] == "ok")


def test_metrics_need_a_token(leader: Running) -> None:
    assert leader.client.get("/metrics").status_code == 401


def test_a_follower_evaluates_nothing(tmp_path: Path) -> None:
    for running in start(tmp_path, leader=False):
        time.sleep(INTERVAL * 4)
        assert running.service.evaluate_now() is None
        assert running.get("/api/v1/slos") == []
        assert running.prometheus.calls == 0
        assert "controlplane_is_leader 0.0" in running.get("/metrics")
