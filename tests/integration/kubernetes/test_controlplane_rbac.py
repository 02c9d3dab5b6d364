"""The control plane's RBAC for real: its orchestrator and actuator run with the ``controlplane``
ServiceAccount's token (deploy/k8s/base/controlplane-rbac.yaml), not the admin's. Reading,
watching and scaling work; anything else is refused by the API server with 403, and the Role
grants nothing these calls do not use.

Every change is put back (the cluster is shared by the session).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from controlplane.actuators.base import ActuatorError
from controlplane.actuators.kubernetes import KubernetesActuator
from controlplane.orchestrator.base import OrchestratorError, WorkloadState
from controlplane.orchestrator.kubernetes import KubernetesOrchestrator, kubernetes_client
from controlplane.stack.kubernetes import INVENTORY_NAMESPACE, KubernetesCluster
from tests.support.kube import CONTROLPLANE_ROLE_CALLS, wait_for

pytestmark = pytest.mark.integration

NAMESPACE = INVENTORY_NAMESPACE
#: A few HPA syncs (every 5 s) and its 15 s downscale stabilisation, plus KWOK's rollout.
SCALE_TIMEOUT = 90.0
#: Each exercised below.
USED = CONTROLPLANE_ROLE_CALLS


@pytest.fixture
def as_controlplane(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    tmp_path: Path,
) -> Iterator[k8s.ApiClient]:
    """An API client of the ``controlplane`` ServiceAccount, built as the control plane builds
    its own (``CONTROLPLANE_KUBERNETES_KUBECONFIG``)."""
    kubeconfig = kubernetes_cluster.service_account_kubeconfig(
        tmp_path / "controlplane.kubeconfig", namespace=NAMESPACE, name="controlplane"
    )
    client = kubernetes_client(kubeconfig)
    try:
        yield client
    finally:
        client.close()


def by_service(reader: KubernetesOrchestrator) -> dict[str, WorkloadState]:
    return {w.service: w for w in reader.workloads()}


def test_the_orchestrator_lists_and_watches_and_the_actuator_scales_with_the_service_account(
    as_controlplane: k8s.ApiClient, kubernetes_cluster: KubernetesCluster
) -> None:
    reader = KubernetesOrchestrator(api_client=as_controlplane, namespace=NAMESPACE)
    actuator = KubernetesActuator(api_client=as_controlplane, namespace=NAMESPACE)
    try:
        assert set(by_service(reader)) == {
            "inventory",
            "inventory-worker",
            "controlplane",
            "dashboards",
            "keycloak",
            "demand-planning",
            "analytics",
        }
        # Through the HPA: its minimum goes up, the HPA controller adds the pod, and both
        # changes reach the orchestrator by its watches (allowed too: no second list).
        result = actuator.scale("inventory", replicas=4)
        assert (result.before, result.after, result.via) == (3, 4, "hpa-bounds")
        wait_for(
            lambda: actuator.ready_replicas("inventory") == 4,
            timeout=SCALE_TIMEOUT,
            what="the actuator reading 4 ready inventory replicas",
        )
        wait_for(
            lambda: by_service(reader)["inventory"].ready_replicas == 4,
            timeout=SCALE_TIMEOUT,
            what="a fourth inventory replica ready, seen through the watch",
        )
        inventory = by_service(reader)["inventory"]
        assert inventory.autoscaler is not None
        assert (inventory.autoscaler.min_replicas, inventory.autoscaler.max_replicas) == (4, 20)
        assert (reader.deployments.lists, reader.autoscalers.lists) == (1, 1)

        # Above the HPA's maximum: both bounds go up (the maximum is never below the minimum).
        assert actuator.scale("demand-planning", replicas=11).after == 11

        def demand_planning_bounds() -> tuple[int, int] | None:
            hpa = by_service(reader)["demand-planning"].autoscaler
            return None if hpa is None else (hpa.min_replicas, hpa.max_replicas)

        wait_for(
            lambda: demand_planning_bounds() == (11, 11),
            timeout=SCALE_TIMEOUT,
            what="demand-planning's HPA bounded to 11-11",
        )
        wait_for(
            lambda: by_service(reader)["demand-planning"].desired_replicas == 11,
            timeout=SCALE_TIMEOUT,
            what="the HPA controller asking for 11 demand-planning replicas",
        )

        assert actuator.set_replica_bounds("inventory", minimum=3, maximum=20) == (3, 20)
        assert actuator.set_replica_bounds("demand-planning", minimum=2, maximum=10) == (2, 10)

        def at_minimum() -> bool:
            workloads = by_service(reader)
            return all(
                workloads[name].current_replicas == workloads[name].ready_replicas == count
                for name, count in (("inventory", 3), ("demand-planning", 2))
            )

        wait_for(
            at_minimum,
            timeout=SCALE_TIMEOUT,
            what="inventory and demand-planning back at their minimum after the HPA's downscale "
            "stabilisation",
        )

        # No HPA: the Deployment's scale subresource.
        result = actuator.scale("inventory-worker", replicas=3)
        assert (result.before, result.after, result.via) == (4, 3, "deployment-scale")
        wait_for(
            lambda: actuator.current_replicas("inventory-worker") == 3,
            timeout=SCALE_TIMEOUT,
            what="inventory-worker at 3 replicas",
        )
        assert actuator.scale("inventory-worker", replicas=4).after == 4
        wait_for(
            lambda: by_service(reader)["inventory-worker"].ready_replicas == 4,
            timeout=SCALE_TIMEOUT,
            what="inventory-worker back at 4 ready replicas",
        )
    finally:
        # Put back as the admin, whatever the service account managed to do.
        for hpa, bounds in (("inventory", (3, 20)), ("demand-planning", (2, 10))):
            patch = json.dumps({"spec": {"minReplicas": bounds[0], "maxReplicas": bounds[1]}})
            kubernetes_cluster.kubectl(
                f"--namespace={NAMESPACE}",
                "patch",
                f"hpa/{hpa}",
                "--type=merge",
                f"--patch={patch}",
            )
        kubernetes_cluster.kubectl(
            f"--namespace={NAMESPACE}", "scale", "deployment/inventory-worker", "--replicas=4"
        )
        reader.close()


def test_calls_outside_the_role_are_refused_with_403(as_controlplane: k8s.ApiClient) -> None:
    core, apps = k8s.CoreV1Api(as_controlplane), k8s.AppsV1Api(as_controlplane)
    # Server-side dry runs: were one allowed, nothing would change.
    refused: dict[str, Callable[[], Any]] = {
        "list pods": lambda: core.list_namespaced_pod(NAMESPACE),
        "read a secret": lambda: core.read_namespaced_secret("inventory-secrets", NAMESPACE),
        "list secrets": lambda: core.list_namespaced_secret(NAMESPACE),
        "list deployments of another namespace": lambda: apps.list_namespaced_deployment(
            "kube-system"
        ),
        "list nodes": lambda: core.list_node(),
        "delete a deployment": lambda: apps.delete_namespaced_deployment(
            "inventory-worker", NAMESPACE, dry_run="All"
        ),
        "change a pod template": lambda: apps.patch_namespaced_deployment(
            "inventory",
            NAMESPACE,
            {"spec": {"template": {"metadata": {"labels": {"changed": "yes"}}}}},
            dry_run="All",
        ),
        "delete an HPA": lambda: k8s.AutoscalingV2Api(
            as_controlplane
        ).delete_namespaced_horizontal_pod_autoscaler("inventory", NAMESPACE, dry_run="All"),
    }
    statuses: dict[str, int | None] = {}
    for what, call in refused.items():
        try:
            call()
        except ApiException as exc:
            statuses[what] = exc.status
        else:
            statuses[what] = None  # allowed
    assert statuses == dict.fromkeys(refused, 403)


def test_the_adapters_errors_carry_the_api_servers_answer(as_controlplane: k8s.ApiClient) -> None:
    with pytest.raises(ActuatorError, match="404"):
        KubernetesActuator(api_client=as_controlplane, namespace=NAMESPACE).scale(
            "no-such-service", replicas=2
        )
    # Outside its namespace, the Role gives nothing.
    reader = KubernetesOrchestrator(api_client=as_controlplane, namespace="kube-system")
    try:
        with pytest.raises(OrchestratorError, match="403"):
            reader.workloads()
    finally:
        reader.close()
    actuator = KubernetesActuator(api_client=as_controlplane, namespace="kube-system")
    with pytest.raises(ActuatorError, match="403"):
        actuator.scale("coredns", replicas=2)


def test_the_role_grants_exactly_what_the_adapters_use(as_controlplane: k8s.ApiClient) -> None:
    review = k8s.AuthorizationV1Api(as_controlplane).create_self_subject_rules_review(
        k8s.V1SelfSubjectRulesReview(spec=k8s.V1SelfSubjectRulesReviewSpec(namespace=NAMESPACE))
    )
    granted = {
        (group, resource, verb)
        for rule in review.status.resource_rules
        for group in rule.api_groups or []
        # What every authenticated user may ask (its own identity and permissions).
        if group not in {"authorization.k8s.io", "authentication.k8s.io"}
        for resource in rule.resources or []
        for verb in rule.verbs
    }
    assert granted == USED
