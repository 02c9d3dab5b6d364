"""Contract test of the Kubernetes adapter: the official client against recorded API objects.

No API server runs here yet; tests/support/k8s.py replays recorded ``apps/v1`` Deployments and
``autoscaling/v2`` HorizontalPodAutoscalers at their real paths. The official client builds the
requests and deserialises the answers; the capacity check then runs on the result.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from controlplane.orchestrator.base import OrchestratorError
from controlplane.orchestrator.kubernetes import KubernetesOrchestrator
from controlplane.targets.capacity import check_capacity
from controlplane.targets.policy import load_capacity_policy
from tests.support.k8s import FakeKubernetes, serve

pytestmark = pytest.mark.unit

DEPLOYMENTS = "/apis/apps/v1/namespaces/inventory/deployments"
HPAS = "/apis/autoscaling/v2/namespaces/inventory/horizontalpodautoscalers"


@pytest.fixture
def api() -> Iterator[tuple[FakeKubernetes, KubernetesOrchestrator]]:
    with serve(FakeKubernetes.recorded()) as fake:
        api_client = k8s.ApiClient(k8s.Configuration(host=fake.url))
        try:
            yield fake, KubernetesOrchestrator(api_client=api_client, namespace="inventory")
        finally:
            api_client.close()


def test_adapter_reads_deployments_and_pairs_their_hpas(
    api: tuple[FakeKubernetes, KubernetesOrchestrator],
) -> None:
    fake, adapter = api
    workloads = {w.service: w for w in adapter.workloads()}
    assert [(method, path) for method, path, _ in fake.requests] == [
        ("GET", DEPLOYMENTS),
        ("GET", HPAS),
    ]
    inventory = workloads["inventory"]
    assert (inventory.desired_replicas, inventory.ready_replicas, inventory.current_replicas) == (
        20,
        18,
        20,
    )
    assert inventory.autoscaler is not None
    assert (inventory.autoscaler.min_replicas, inventory.autoscaler.max_replicas) == (3, 20)
    assert inventory.autoscaler.target_cpu_percent == 70
    assert inventory.cpu_percent == 88
    assert inventory.resources is not None
    assert (inventory.resources.cpu_request, inventory.resources.memory_limit) == ("200m", "2Gi")


def test_recorded_situation_raises_the_right_findings_and_they_clear_when_fixed(
    api: tuple[FakeKubernetes, KubernetesOrchestrator],
) -> None:
    fake, adapter = api
    policy = load_capacity_policy()
    found = {(f.subject, f.kind) for f in check_capacity(policy, adapter.workloads())}
    assert found == {
        ("service/inventory", "capacity.replicas_not_ready"),
        ("service/inventory", "capacity.at_max_replicas"),
        ("service/demand-planning", "capacity.hpa_drift"),
        ("service/analytics", "capacity.workload_missing"),
    }
    fake.deployments["inventory"]["status"]["readyReplicas"] = 20
    current = fake.hpas["inventory"]["status"]["currentMetrics"][0]["resource"]["current"]
    current["averageUtilization"] = 64
    fake.hpas["demand-planning"]["spec"]["minReplicas"] = 2
    fixed = {(f.subject, f.kind) for f in check_capacity(policy, adapter.workloads())}
    assert fixed == {("service/analytics", "capacity.workload_missing")}


def test_api_refusal_is_a_typed_error(api: tuple[FakeKubernetes, KubernetesOrchestrator]) -> None:
    fake, adapter = api
    fake.fail_with = 403
    with pytest.raises(OrchestratorError, match="403"):
        adapter.workloads()
