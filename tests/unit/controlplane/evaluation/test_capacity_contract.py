"""The capacity check on the Kubernetes adapter (official client against the recorded API
stand-in), reconciled into the store: a policy-drifted HPA opens ``capacity.hpa_drift``, fixing
it resolves it, and an API that refuses to list leaves every capacity finding as it was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client as k8s

from controlplane.orchestrator.kubernetes import KubernetesOrchestrator
from controlplane.store.database import Database
from controlplane.store.findings import list_findings
from controlplane.targets.policy import load_capacity_policy
from controlplane.targets.reconcile import INPUT_UNAVAILABLE, CapacityCheck, reconcile
from tests.support.k8s import FakeKubernetes, serve

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubernetes, CapacityCheck, Database]]:
    database = Database.from_url(f"sqlite:///{tmp_path}/controlplane.db")
    database.migrate()
    with serve(FakeKubernetes.recorded()) as fake:
        api_client = k8s.ApiClient(k8s.Configuration(host=fake.url))
        adapter = KubernetesOrchestrator(api_client=api_client, namespace="inventory")
        try:
            yield fake, CapacityCheck(policy=load_capacity_policy(), orchestrator=adapter), database
        finally:
            api_client.close()
            database.dispose()


def run_at(check: CapacityCheck, database: Database, at: datetime) -> dict[tuple[str, str], bool]:
    """Run and reconcile; (kind, subject) -> still open, for every finding ever stored."""
    with database.writer() as session:
        reconcile(session, run=check.run(now=at), at=at)
    with database.reader() as session:
        return {(f.kind, f.subject): f.resolved_at is None for f in list_findings(session)}


def test_drifted_hpa_is_found_then_resolved_when_fixed(
    cluster: tuple[FakeKubernetes, CapacityCheck, Database],
) -> None:
    fake, check, database = cluster
    found = run_at(check, database, T0)
    assert found == {
        ("capacity.replicas_not_ready", "service/inventory"): True,
        ("capacity.at_max_replicas", "service/inventory"): True,
        ("capacity.hpa_drift", "service/demand-planning"): True,
        ("capacity.workload_missing", "service/analytics"): True,
    }
    with database.reader() as session:
        (drift,) = list_findings(session, kind="capacity.hpa_drift")
    assert drift.evidence["differences"] == {"min_replicas": {"policy": 2, "live": 1}}

    fake.hpas["demand-planning"]["spec"]["minReplicas"] = 2
    fake.deployments["inventory"]["status"]["readyReplicas"] = 20
    fixed = run_at(check, database, T0 + timedelta(minutes=1))
    assert fixed == {
        ("capacity.replicas_not_ready", "service/inventory"): False,
        ("capacity.at_max_replicas", "service/inventory"): True,
        ("capacity.hpa_drift", "service/demand-planning"): False,
        ("capacity.workload_missing", "service/analytics"): True,
    }


def test_api_refusal_resolves_nothing_and_is_recorded(
    cluster: tuple[FakeKubernetes, CapacityCheck, Database],
) -> None:
    fake, check, database = cluster
    before = run_at(check, database, T0)
    fake.fail_with = 403
    during = run_at(check, database, T0 + timedelta(minutes=1))
    assert during.pop((INPUT_UNAVAILABLE, "check/capacity/orchestrator")) is True
    assert during == before  # nothing resolved while the cluster cannot be read
    with database.reader() as session:
        (unreadable,) = list_findings(session, kind=INPUT_UNAVAILABLE)
    assert "403" in unreadable.evidence["error"]

    fake.fail_with = None
    after = run_at(check, database, T0 + timedelta(minutes=2))
    assert after.pop((INPUT_UNAVAILABLE, "check/capacity/orchestrator")) is False
    assert after == before
