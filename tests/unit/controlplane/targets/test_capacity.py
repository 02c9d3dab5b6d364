from __future__ import annotations

import pytest

from controlplane.orchestrator.base import AutoscalerState, ContainerResources, WorkloadState
from controlplane.targets.capacity import check_capacity
from controlplane.targets.policy import load_capacity_policy

pytestmark = pytest.mark.unit

POLICY = load_capacity_policy()
MATCHING = ContainerResources(
    cpu_request="200m", memory_request="512Mi", cpu_limit="1", memory_limit="2048Mi"
)


def inventory(
    *,
    desired: int = 5,
    ready: int = 5,
    current: int = 5,
    cpu: int | None = 40,
    hpa: AutoscalerState | None = None,
    resources: ContainerResources | None = MATCHING,
) -> WorkloadState:
    return WorkloadState(
        service="inventory",
        desired_replicas=desired,
        ready_replicas=ready,
        current_replicas=current,
        cpu_percent=cpu,
        autoscaler=hpa
        if hpa is not None
        else AutoscalerState(
            name="inventory",
            min_replicas=3,
            max_replicas=20,
            target_cpu_percent=70,
            current_cpu_percent=cpu,
            desired_replicas=desired,
        ),
        resources=resources,
    )


def kinds(workloads: list[WorkloadState]) -> set[str]:
    return {f.kind for f in check_capacity(POLICY, workloads, services=frozenset({"inventory"}))}


def test_a_workload_as_the_policy_says_raises_nothing() -> None:
    assert kinds([inventory()]) == set()


def test_equal_quantities_in_other_units_are_not_drift() -> None:
    assert kinds([inventory(resources=MATCHING)]) == set()


def test_not_ready_replicas() -> None:
    (finding,) = check_capacity(
        POLICY, [inventory(desired=5, ready=3)], services=frozenset({"inventory"})
    )
    assert finding.kind == "capacity.replicas_not_ready"
    assert finding.severity == "warning"
    assert finding.evidence == {"ready": 3, "desired": 5}
    assert kinds([inventory(desired=3, ready=0)]) == {"capacity.replicas_not_ready"}


def test_hpa_bounds_drift_from_policy() -> None:
    drifted = AutoscalerState(
        name="inventory",
        min_replicas=1,
        max_replicas=20,
        target_cpu_percent=90,
        current_cpu_percent=40,
        desired_replicas=5,
    )
    (finding,) = check_capacity(POLICY, [inventory(hpa=drifted)], services=frozenset({"inventory"}))
    assert finding.kind == "capacity.hpa_drift"
    assert finding.evidence["differences"] == {
        "min_replicas": {"policy": 3, "live": 1},
        "target_cpu_percent": {"policy": 70, "live": 90},
    }


def test_resources_drift() -> None:
    small = ContainerResources(
        cpu_request="100m", memory_request="512Mi", cpu_limit="1", memory_limit="2Gi"
    )
    (finding,) = check_capacity(
        POLICY, [inventory(resources=small)], services=frozenset({"inventory"})
    )
    assert finding.kind == "capacity.resources_drift"
    assert set(finding.evidence["differences"]) == {"requests"}


def test_at_max_replicas_with_cpu_above_target_is_a_capacity_risk() -> None:
    assert "capacity.at_max_replicas" in kinds(
        [inventory(desired=20, ready=20, current=20, cpu=85)]
    )
    # At max but below target: fine. Below max and hot: the autoscaler can still act.
    assert kinds([inventory(desired=20, ready=20, current=20, cpu=60)]) == set()
    assert kinds([inventory(desired=10, ready=10, current=10, cpu=95)]) == set()


def test_unknown_cpu_never_reads_as_a_risk_or_as_fine_capacity() -> None:
    assert kinds([inventory(desired=20, ready=20, current=20, cpu=None)]) == set()


def test_missing_autoscaler_and_missing_workloads() -> None:
    no_hpa = WorkloadState(
        service="inventory",
        desired_replicas=3,
        ready_replicas=3,
        current_replicas=3,
        cpu_percent=None,
        autoscaler=None,
        resources=MATCHING,
    )
    assert kinds([no_hpa]) == {"capacity.hpa_missing"}
    everything = {f.subject: f.kind for f in check_capacity(POLICY, [inventory()])}
    assert everything == {
        "service/demand-planning": "capacity.workload_missing",
        "service/analytics": "capacity.workload_missing",
    }


def local(*, current: int) -> WorkloadState:
    """The local gunicorn master as the local orchestrator reports it: no autoscaler object."""
    return WorkloadState(
        service="inventory",
        desired_replicas=current,
        ready_replicas=current,
        current_replicas=current,
        cpu_percent=10,
        autoscaler=None,
        resources=None,
    )


def local_kinds(workloads: list[WorkloadState]) -> set[str]:
    found = check_capacity(POLICY, workloads, services=frozenset({"inventory"}), autoscalers=False)
    return {f.kind for f in found}


def test_an_orchestrator_without_autoscalers_is_not_asked_for_one() -> None:
    """Locally there is no HPA to have: the policy's bounds apply to the live workers."""
    assert local_kinds([local(current=3)]) == set()
    assert local_kinds([local(current=20)]) == set()


def test_fewer_or_more_replicas_than_the_policy_bounds() -> None:
    (below,) = check_capacity(
        POLICY, [local(current=2)], services=frozenset({"inventory"}), autoscalers=False
    )
    assert below.kind == "capacity.replicas_outside_policy"
    assert below.severity == "warning"
    assert below.evidence == {"replicas": 2, "policy": {"min": 3, "max": 20}}
    assert "2 replicas, below the policy's minimum of 3" in below.summary
    assert local_kinds([local(current=21)]) == {"capacity.replicas_outside_policy"}
    # Where an autoscaler bounds the service the same holds: it runs outside the policy.
    assert kinds([inventory(desired=2, ready=2, current=2)]) == {"capacity.replicas_outside_policy"}
