"""The Kubernetes actuator refuses impossible requests before it asks the API server anything
(its calls themselves run against a real API server in tests/integration/kubernetes)."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from controlplane.actuators.base import ActuatorError
from controlplane.actuators.kubernetes import KubernetesActuator

pytestmark = pytest.mark.unit


@pytest.fixture
def actuator() -> KubernetesActuator:
    # Nothing listens there: a request would fail with a connection error, not these.
    return KubernetesActuator(
        api_client=k8s.ApiClient(k8s.Configuration(host="http://127.0.0.1:9")),
        namespace="inventory",
    )


def test_fewer_than_one_replica_is_refused(actuator: KubernetesActuator) -> None:
    with pytest.raises(ActuatorError, match="at least 1"):
        actuator.scale("inventory", replicas=0)


@pytest.mark.parametrize(("minimum", "maximum"), [(5, 3), (0, 3)])
def test_bounds_out_of_order_are_refused(
    actuator: KubernetesActuator, minimum: int, maximum: int
) -> None:
    with pytest.raises(ActuatorError, match="1 <= min <= max"):
        actuator.set_replica_bounds("inventory", minimum=minimum, maximum=maximum)
