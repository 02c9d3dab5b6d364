"""``GET /api/v1/capacity`` with the Kubernetes orchestrator against the real cluster: the control
plane API runs in-process, built from settings the way it runs in production
(``CONTROLPLANE_ORCHESTRATOR=kubernetes``, credentials from ``KUBECONFIG``), authenticated as the
``controlplane`` ServiceAccount of deploy/k8s (so its Role is enough for everything the page
shows), and answers with the Deployments and HPAs the API server holds, those outside the policy
included, and the API server's version."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from alerts.wiring import create_app
from controlplane.core.config import ControlPlaneSettings
from controlplane.core.security import Role
from controlplane.orchestrator.kubernetes import KubernetesOrchestrator
from controlplane.runtime import Runtime
from controlplane.stack.kubernetes import INVENTORY_NAMESPACE, KubernetesCluster
from controlplane.stack.settings import read_versions
from controlplane.store.tokens import create_token
from tests.support.kube import admin_client, wait_for
from tests.unit.controlplane.asgi import AppClient

pytestmark = pytest.mark.integration


@pytest.fixture
def capacity_api(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[AppClient, dict[str, str]]]:
    """The API in-process with the Kubernetes orchestrator, and a viewer's headers."""
    kubeconfig = kubernetes_cluster.service_account_kubeconfig(
        tmp_path / "controlplane.kubeconfig", namespace=INVENTORY_NAMESPACE, name="controlplane"
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a pod
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    settings = ControlPlaneSettings.model_validate(
        {
            "store": {"data_dir": tmp_path / "controlplane"},
            "webhook": {"webhook_token": "t" * 32},
            "leader": {"leader_election": False},
            "orchestrator": {"kind": "kubernetes", "kubernetes_namespace": INVENTORY_NAMESPACE},
        }
    )
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    assert runtime.orchestration is not None
    reader = runtime.orchestration.reader
    assert isinstance(reader, KubernetesOrchestrator)
    try:
        with AppClient(app) as client:
            with runtime.database.writer() as session:
                _, secret = create_token(
                    session, name="viewer", role=Role.VIEWER, at=datetime.now(UTC)
                )
            yield client, {"Authorization": f"Bearer {secret}"}
    finally:
        reader.close()  # the watches of its caches
        reader.api_client.close()  # type: ignore[no-untyped-call]


def _server_side(cluster: KubernetesCluster) -> dict[str, dict[str, Any]]:
    """Deployment name -> the numbers the API server holds, in ``/capacity``'s terms."""
    api = admin_client(cluster)
    try:
        # Any: the client's models type every field optional; these are all set here.
        deployments: list[Any] = (
            k8s.AppsV1Api(api).list_namespaced_deployment(INVENTORY_NAMESPACE).items
        )
        listed: list[Any] = (
            k8s.AutoscalingV2Api(api)
            .list_namespaced_horizontal_pod_autoscaler(INVENTORY_NAMESPACE)
            .items
        )
    finally:
        api.close()  # type: ignore[no-untyped-call]
    hpas = {hpa.spec.scale_target_ref.name: hpa for hpa in listed}
    found: dict[str, dict[str, Any]] = {}
    for deployment in deployments:
        name = deployment.metadata.name
        hpa = hpas.get(name)
        autoscaler = None
        if hpa is not None:
            (metric,) = hpa.spec.metrics
            current = [  # an entry without a resource while the metric is unreadable
                m.resource.current
                for m in hpa.status.current_metrics or []
                if m.resource is not None and m.resource.name == "cpu"
            ]
            autoscaler = {
                "name": hpa.metadata.name,
                "min_replicas": hpa.spec.min_replicas,
                "max_replicas": hpa.spec.max_replicas,
                "target_cpu_percent": metric.resource.target.average_utilization,
                "current_cpu_percent": current[0].average_utilization if current else None,
                "desired_replicas": hpa.status.desired_replicas,
            }
        requests = deployment.spec.template.spec.containers[0].resources.requests or {}
        limits = deployment.spec.template.spec.containers[0].resources.limits or {}
        found[name] = {
            "desired_replicas": deployment.spec.replicas,
            "current_replicas": deployment.status.replicas,
            "ready_replicas": deployment.status.ready_replicas,
            "autoscaler": autoscaler,
            "resources": {
                "cpu_request": requests.get("cpu"),
                "memory_request": requests.get("memory"),
                "cpu_limit": limits.get("cpu"),
                "memory_limit": limits.get("memory"),
            },
        }
    return found


def _as_listed(workloads: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keys = ("desired_replicas", "current_replicas", "ready_replicas", "autoscaler", "resources")
    return {w["name"]: {key: w[key] for key in keys} for w in workloads}


def test_capacity_lists_the_clusters_deployments_and_hpas_as_the_api_server_holds_them(
    kubernetes_cluster: KubernetesCluster, capacity_api: tuple[AppClient, dict[str, str]]
) -> None:
    client, viewer = capacity_api
    answers: list[dict[str, Any]] = []

    def same_as_the_api_server() -> bool:
        server = _server_side(kubernetes_cluster)
        answer = client.get("/api/v1/capacity", headers=viewer)
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
        # The HPA controller first needs a metrics-server reading to fill in the current CPU,
        # and the caches follow the API server through watches: compare once both are there.
        measured = server["inventory"]["autoscaler"]["current_cpu_percent"] is not None
        return measured and _as_listed(answers[-1]["workloads"]) == server

    wait_for(
        same_as_the_api_server,
        timeout=120,
        every=1,
        what="/capacity as the API server holds it, the HPA's current CPU included",
    )
    body = answers[-1]
    assert body["error"] is None
    assert body["orchestrator"] == {
        "kind": "kubernetes",
        "location": kubernetes_cluster.url,
        "namespace": INVENTORY_NAMESPACE,
        "version": read_versions()["K8S_VERSION"],
    }
    assert body["orchestrator"]["version"] == "v1.36.3"
    workloads = {w["name"]: w for w in body["workloads"]}
    assert set(workloads) == {
        "inventory",
        "demand-planning",
        "analytics",
        "inventory-worker",
        "controlplane",
        "dashboards",
        "keycloak",
    }
    outside = {name for name, w in workloads.items() if not w["in_policy"]}
    assert outside == {"inventory-worker", "controlplane", "dashboards", "keycloak"}
    inventory = workloads["inventory"]["autoscaler"]
    assert (inventory["min_replicas"], inventory["max_replicas"]) == (3, 20)
    assert inventory["target_cpu_percent"] == 70
    assert workloads["inventory"]["cpu_percent"] == inventory["current_cpu_percent"]
    worker = workloads["inventory-worker"]
    assert worker["autoscaler"] is None
    assert (worker["desired_replicas"], worker["ready_replicas"]) == (4, 4)
    assert worker["cpu_percent"] is None  # no HPA reads it: unknown, not 0
    # The policy's rows carry the same live state.
    services = {s["service"]: s for s in body["services"]}
    assert services["inventory"]["live"]["autoscaler"] == {
        "min_replicas": 3,
        "max_replicas": 20,
        "target_cpu_percent": 70,
    }
    assert services["inventory"]["live"]["has_autoscalers"] is True
