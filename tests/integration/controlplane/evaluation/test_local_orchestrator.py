"""The local orchestrator against a real gunicorn master, through the capacity check and the
findings store: fewer workers than configured, at the most workers with CPU above target, and a
master that is gone — each found, then resolved when fixed. ``/api/v1/capacity`` in local mode
reports the same CPU and bounds as the check."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.wiring import create_app
from controlplane.actuators.local import LocalGunicornActuator
from controlplane.core.config import ControlPlaneSettings
from controlplane.core.security import Role
from controlplane.evaluation.service import build_target_checks
from controlplane.orchestrator.local import LocalOrchestrator
from controlplane.runtime import Runtime
from controlplane.store.database import Database
from controlplane.store.findings import list_findings
from controlplane.store.tokens import create_token
from controlplane.targets.policy import load_capacity_policy
from controlplane.targets.reconcile import INPUT_UNAVAILABLE, CapacityCheck, reconcile
from tests.support.gunicorn import running_gunicorn
from tests.unit.controlplane.asgi import AppClient

pytestmark = pytest.mark.integration

APP = """
import os, time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/spin":  # burn CPU for a while
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    with running_gunicorn(tmp_path, app_source=APP, module="spinapp") as server:
        yield server.pidfile, server.url


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{tmp_path}/controlplane.db")
    db.migrate()
    yield db
    db.dispose()


def check(database: Database, orchestrator: LocalOrchestrator) -> dict[str, bool]:
    """One capacity run reconciled into the store: "kind" -> open, for every finding so far."""
    capacity = CapacityCheck(
        policy=load_capacity_policy(), orchestrator=orchestrator, services=frozenset({"inventory"})
    )
    now = datetime.now(UTC)
    with database.writer() as session:
        reconcile(session, run=capacity.run(now=now), at=now)
    with database.reader() as session:
        return {f.kind: f.resolved_at is None for f in list_findings(session)}


def test_fewer_workers_than_configured_until_scaled(
    gunicorn: tuple[Path, str], database: Database
) -> None:
    pidfile, _ = gunicorn
    orchestrator = LocalOrchestrator(pidfile=pidfile, desired_replicas=3)
    (workload,) = orchestrator.workloads()
    assert (workload.desired_replicas, workload.ready_replicas) == (3, 2)
    assert workload.autoscaler is None  # no local bounds configured: none expected either
    assert check(database, orchestrator) == {
        "capacity.replicas_not_ready": True,
        "capacity.replicas_outside_policy": True,  # 2 workers, the policy's minimum is 3
    }
    assert LocalGunicornActuator(pidfile=pidfile).scale("inventory", replicas=3).reached
    assert check(database, orchestrator) == {
        "capacity.replicas_not_ready": False,
        "capacity.replicas_outside_policy": False,
    }


@contextmanager
def busy_workers(url: str, *, clients: int = 4) -> Iterator[None]:
    """Keep the workers spinning (CPU-bound requests) while the block runs."""
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                client.get(f"{url}/spin")

    threads = [threading.Thread(target=load) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def test_at_the_most_workers_with_cpu_above_target_is_a_capacity_risk(
    gunicorn: tuple[Path, str], database: Database
) -> None:
    pidfile, url = gunicorn
    # A low CPU target: the machine is shared (a busy worker may get a fifth of a core), an idle
    # one uses next to nothing.
    orchestrator = LocalOrchestrator(
        pidfile=pidfile, min_replicas=1, max_replicas=2, target_cpu_percent=5
    )
    # First CPU sample: bounds drifted from the policy's, and 2 workers below its minimum of 3.
    assert check(database, orchestrator) == {
        "capacity.hpa_drift": True,
        "capacity.replicas_outside_policy": True,
    }
    with busy_workers(url):
        time.sleep(3)
        busy = check(database, orchestrator)
    assert busy == {
        "capacity.hpa_drift": True,
        "capacity.replicas_outside_policy": True,
        "capacity.at_max_replicas": True,
    }
    with database.reader() as session:
        (risk,) = list_findings(session, kind="capacity.at_max_replicas")
    assert risk.evidence["max_replicas"] == 2
    assert risk.evidence["cpu_percent"] > 5

    time.sleep(1)
    check(database, orchestrator)  # a quiet sample after the load
    time.sleep(1)
    assert check(database, orchestrator)["capacity.at_max_replicas"] is False


def test_a_gone_master_is_recorded_and_resolves_nothing(
    gunicorn: tuple[Path, str], database: Database, tmp_path: Path
) -> None:
    pidfile, _ = gunicorn
    assert check(database, LocalOrchestrator(pidfile=pidfile, desired_replicas=3)) == {
        "capacity.replicas_not_ready": True,
        "capacity.replicas_outside_policy": True,
    }
    gone = LocalOrchestrator(pidfile=tmp_path / "missing.pid", desired_replicas=3)
    assert check(database, gone) == {
        "capacity.replicas_not_ready": True,
        "capacity.replicas_outside_policy": True,
        INPUT_UNAVAILABLE: True,
    }
    with database.reader() as session:
        (unreadable,) = list_findings(session, kind=INPUT_UNAVAILABLE)
    assert "missing.pid" in unreadable.evidence["error"]


def test_the_capacity_api_in_local_mode_reports_the_cpu_the_check_measures(
    gunicorn: tuple[Path, str], tmp_path: Path
) -> None:
    pidfile, url = gunicorn
    settings = ControlPlaneSettings.model_validate(
        {
            "store": {"data_dir": tmp_path / "controlplane"},
            "webhook": {"webhook_token": "t" * 32},
            "leader": {"leader_election": False},
            "orchestrator": {
                "kind": "local",
                "local_pidfile": pidfile,
                "local_min_replicas": 1,
                "local_max_replicas": 2,
                "local_target_cpu_percent": 5,
            },
        }
    )
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    assert runtime.orchestration is not None
    (capacity_check, _dr_check) = build_target_checks(settings, orchestration=runtime.orchestration)
    with AppClient(app) as client:
        with runtime.database.writer() as session:
            _, secret = create_token(session, name="viewer", role=Role.VIEWER, at=datetime.now(UTC))
        viewer = {"Authorization": f"Bearer {secret}"}

        def capacity() -> dict[str, Any]:
            answer = client.get("/api/v1/capacity", headers=viewer)
            assert answer.status_code == 200
            body = answer.json()
            assert body["error"] is None
            return dict(body)

        def inventory() -> dict[str, Any]:
            (service,) = [s for s in capacity()["services"] if s["service"] == "inventory"]
            return dict(service)

        first = capacity()  # the first CPU sample
        with busy_workers(url):
            time.sleep(2)
            busy = inventory()
            # The check reads through the same orchestrator: it sees the sample just taken.
            run = capacity_check.run(now=datetime.now(UTC))
    live = busy["live"]
    assert live is not None
    assert live["cpu_percent"] is not None
    assert live["cpu_percent"] > 5
    assert live["autoscaler"] == {"min_replicas": 1, "max_replicas": 2, "target_cpu_percent": 5}
    assert live["has_autoscalers"] is False
    (risk,) = [f for f in run.findings if f.kind == "capacity.at_max_replicas"]
    assert risk.evidence["cpu_percent"] == live["cpu_percent"]
    # Which orchestrator, and where: the local master's pidfile, no Kubernetes namespace.
    assert first["orchestrator"] == {
        "kind": "local",
        "location": str(pidfile),
        "namespace": None,
        "version": None,
    }
    (workload,) = first["workloads"]
    assert (workload["name"], workload["in_policy"]) == ("inventory", True)
    assert workload["resources"] is None  # no container requests locally
