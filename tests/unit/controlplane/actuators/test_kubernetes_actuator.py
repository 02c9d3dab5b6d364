"""Contract test of the Kubernetes actuator against recorded objects (tests/support/k8s.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from controlplane.actuators.base import ActuatorError
from controlplane.actuators.kubernetes import KubernetesActuator
from tests.support.k8s import FakeKubernetes, serve

pytestmark = pytest.mark.unit

BASE = "/apis"
HPA = f"{BASE}/autoscaling/v2/namespaces/inventory/horizontalpodautoscalers"
DEPLOYMENTS = f"{BASE}/apps/v1/namespaces/inventory/deployments"


@pytest.fixture
def api() -> Iterator[tuple[FakeKubernetes, KubernetesActuator]]:
    with serve(FakeKubernetes.recorded()) as fake:
        api_client = k8s.ApiClient(k8s.Configuration(host=fake.url))
        try:
            yield fake, KubernetesActuator(api_client=api_client, namespace="inventory")
        finally:
            api_client.close()


def patches(fake: FakeKubernetes) -> list[tuple[str, object]]:
    return [(path, body) for method, path, body in fake.requests if method == "PATCH"]


def test_with_an_hpa_it_changes_the_hpa_bounds_never_the_deployment(
    api: tuple[FakeKubernetes, KubernetesActuator],
) -> None:
    fake, actuator = api
    result = actuator.scale("inventory", replicas=8)
    assert (result.before, result.after, result.via) == (20, 8, "hpa-bounds")
    assert patches(fake) == [(f"{HPA}/inventory", {"spec": {"minReplicas": 8, "maxReplicas": 20}})]
    assert fake.hpas["inventory"]["spec"]["minReplicas"] == 8
    assert fake.deployments["inventory"]["spec"]["replicas"] == 20  # the HPA's job, not ours


def test_scaling_above_the_hpa_maximum_raises_both_bounds(
    api: tuple[FakeKubernetes, KubernetesActuator],
) -> None:
    fake, actuator = api
    actuator.scale("inventory", replicas=24)
    assert fake.hpas["inventory"]["spec"]["minReplicas"] == 24
    assert fake.hpas["inventory"]["spec"]["maxReplicas"] == 24


def test_without_an_hpa_it_patches_the_scale_subresource(
    api: tuple[FakeKubernetes, KubernetesActuator],
) -> None:
    fake, actuator = api
    del fake.hpas["demand-planning"]
    result = actuator.scale("demand-planning", replicas=4)
    assert (result.before, result.after, result.via) == (2, 4, "deployment-scale")
    assert patches(fake) == [(f"{DEPLOYMENTS}/demand-planning/scale", {"spec": {"replicas": 4}})]


def test_set_replica_bounds_and_errors(api: tuple[FakeKubernetes, KubernetesActuator]) -> None:
    fake, actuator = api
    assert actuator.set_replica_bounds("demand-planning", minimum=2, maximum=10) == (2, 10)
    with pytest.raises(ActuatorError, match="min <= max"):
        actuator.set_replica_bounds("inventory", minimum=5, maximum=3)
    with pytest.raises(ActuatorError, match="404"):
        actuator.scale("missing-service", replicas=2)
    fake.fail_with = 403
    with pytest.raises(ActuatorError, match="403"):
        actuator.scale("inventory", replicas=3)
