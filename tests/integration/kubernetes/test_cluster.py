"""The Kubernetes control plane of the test stack: real API server, controllers, scheduler, and
KWOK's fake nodes (no container runs: a pod is Ready when KWOK says so)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from controlplane.stack.kubernetes import NOT_READY_LABEL, KubernetesCluster, NodeShape
from controlplane.stack.settings import read_versions
from tests.support.kube import admin_client, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def api(kubernetes_cluster: KubernetesCluster) -> Iterator[k8s.ApiClient]:
    client = admin_client(kubernetes_cluster)
    try:
        yield client
    finally:
        client.close()


def test_api_server_runs_the_pinned_release(
    kubernetes_cluster: KubernetesCluster, api: k8s.ApiClient
) -> None:
    info = k8s.VersionApi(api).get_code()
    assert info.git_version == read_versions()["K8S_VERSION"]
    assert kubernetes_cluster.apiserver.version() == f"Kubernetes {info.git_version}"


def test_nodes_are_the_seed_application_pool(api: k8s.ApiClient) -> None:
    nodes = k8s.CoreV1Api(api).list_node().items
    assert len(nodes) == 3
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True", node.metadata.name
        assert node.status.allocatable["cpu"] == NodeShape.CPU
        assert node.status.allocatable["memory"] == NodeShape.MEMORY
    zones = {node.metadata.labels["topology.kubernetes.io/zone"] for node in nodes}
    assert zones == set(NodeShape.ZONES)


def _deployment(name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "not-pulled.example/app:1",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                },
            },
        },
    }


def test_a_deployment_rolls_out_and_a_held_pod_turns_not_ready(
    kubernetes_cluster: KubernetesCluster, api: k8s.ApiClient
) -> None:
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)

    def ready() -> int:
        status = apps.read_namespaced_deployment("rollout-probe", "default").status
        return int(status.ready_replicas or 0)

    def hold(pod: str, value: str | None) -> None:
        core.patch_namespaced_pod(
            pod, "default", {"metadata": {"labels": {NOT_READY_LABEL: value}}}
        )

    kubernetes_cluster.apply([_deployment("rollout-probe", 3)])
    try:
        # controllers → ReplicaSet → pods → scheduler → KWOK: every pod placed and Ready
        wait_for(lambda: ready() == 3, timeout=60, what="3 ready replicas")
        pods = core.list_namespaced_pod("default", label_selector="app=rollout-probe").items
        assert all(pod.spec.node_name for pod in pods)
        held = pods[0].metadata.name
        hold(held, "true")
        wait_for(lambda: ready() == 2, timeout=60, what="the held pod not ready")
        hold(held, None)
        wait_for(lambda: ready() == 3, timeout=60, what="the released pod ready again")
    finally:
        apps.delete_namespaced_deployment("rollout-probe", "default")
    wait_for(
        lambda: not core.list_namespaced_pod("default", label_selector="app=rollout-probe").items,
        timeout=60,
        what="pods deleted with their Deployment (garbage collector + KWOK)",
    )
