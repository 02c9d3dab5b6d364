"""deploy/k8s applied for real: the rendered production overlay goes to the API server
(server-side apply), every object is accepted, the Deployments roll out through the controllers,
the scheduler and KWOK, and the HPAs hold the seed's numbers.

The pods run no container (KWOK reports them Running and Ready): this proves the objects, the
controllers' handling of them and the scheduling, not the images."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from controlplane.stack.kubernetes import INVENTORY_NAMESPACE, KubernetesCluster
from controlplane.targets.policy import load_capacity_policy
from tests.support.kube import admin_client

pytestmark = pytest.mark.integration

POLICY = load_capacity_policy()


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def test_every_object_of_the_overlay_is_accepted_and_live(
    kubernetes_cluster: KubernetesCluster, inventory_on_kubernetes: list[dict[str, Any]]
) -> None:
    rendered = kubernetes_cluster.render()
    assert len(rendered) > 20
    # A second server-side apply of the same objects changes nothing (everything was accepted
    # as written, nothing is owned by someone else).
    output = kubernetes_cluster.apply(rendered, field_manager="deploy")
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == len(rendered)
    assert all(line.endswith("serverside-applied") for line in lines), output
    # And each object can be read back from the API server by kind and name.
    listed = kubernetes_cluster.kubectl(
        "get",
        "--namespace",
        INVENTORY_NAMESPACE,
        "-o",
        "name",
        "deployments,services,configmaps,serviceaccounts,roles,rolebindings,"
        "horizontalpodautoscalers,poddisruptionbudgets,networkpolicies,ingresses",
    ).stdout.split()
    for kind, namespace, name in map(_key, rendered):
        if kind == "Namespace":
            continue
        assert namespace == INVENTORY_NAMESPACE
        assert any(entry.endswith(f"/{name}") for entry in listed), (kind, name)


def test_deployments_roll_out_and_hpas_carry_the_seed_numbers(
    kubernetes_cluster: KubernetesCluster, inventory_on_kubernetes: list[dict[str, Any]]
) -> None:
    api = admin_client(kubernetes_cluster)
    try:
        apps = k8s.AppsV1Api(api)
        autoscaling = k8s.AutoscalingV2Api(api)
        core = k8s.CoreV1Api(api)
        hpas = {
            h.metadata.name: h
            for h in autoscaling.list_namespaced_horizontal_pod_autoscaler(
                INVENTORY_NAMESPACE
            ).items
        }
        for service in POLICY.spec.services:
            hpa = hpas[service.name]
            assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (
                service.replicas.min,
                service.replicas.max,
            )
            target = hpa.spec.metrics[0].resource.target
            assert (target.type, target.average_utilization) == (
                "Utilization",
                service.target_cpu_percent,
            )
            deployment = apps.read_namespaced_deployment(service.name, INVENTORY_NAMESPACE)
            # The HPA (not the manifest, which sets no replicas) raised it to its minimum.
            assert deployment.spec.replicas >= service.replicas.min
            assert deployment.status.ready_replicas == deployment.spec.replicas
        # The production overlay's own count for the stream workers (no HPA).
        worker = apps.read_namespaced_deployment("inventory-worker", INVENTORY_NAMESPACE)
        assert worker.spec.replicas == 4
        assert worker.status.ready_replicas == 4
        # Every pod was placed on a fake node of the application pool.
        pods = core.list_namespaced_pod(INVENTORY_NAMESPACE).items
        assert pods
        assert all(p.spec.node_name.startswith("application-") for p in pods)
        assert all(p.status.phase == "Running" for p in pods)
    finally:
        api.close()
