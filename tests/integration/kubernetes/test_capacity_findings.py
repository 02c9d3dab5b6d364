"""The capacity check on real objects, the way ``controlplane serve`` runs it: the evaluation
service built from settings that name the Kubernetes orchestrator and the ``controlplane``
ServiceAccount's kubeconfig reads deploy/k8s's Deployments and HPAs through its list+watch
caches and reconciles the findings into its store. Each change made with kubectl on the live
objects opens its finding; putting the change back resolves it.

Every test puts back what it changed (the cluster is shared by the session) and waits until the
control plane sees nothing wrong again, so the next one starts from a clean deployment.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from controlplane.core.config import ControlPlaneSettings
from controlplane.evaluation.metrics import ControlPlaneMetrics
from controlplane.evaluation.service import EvaluationService
from controlplane.orchestrator.kubernetes import KubernetesOrchestrator
from controlplane.runtime import Runtime
from controlplane.stack.kubernetes import (
    CPU_USAGE_ANNOTATION,
    INVENTORY_NAMESPACE,
    NOT_READY_LABEL,
    KubernetesCluster,
)
from controlplane.store.findings import StoredFinding, list_findings
from controlplane.targets.reconcile import INPUT_UNAVAILABLE
from tests.support.kube import admin_client, wait_for

pytestmark = pytest.mark.integration

NAMESPACE = INVENTORY_NAMESPACE
#: Long enough for a rollout through KWOK and a few HPA syncs (every 5 s).
CHANGE_TIMEOUT = 90.0
#: metrics-server needs two scrapes (10 s apart) of a new pod before the HPA has its CPU.
METRICS_TIMEOUT = 150.0


@dataclass
class ControlPlane:
    """The evaluation service of one control plane and the cluster it watches."""

    service: EvaluationService
    cluster: KubernetesCluster

    @property
    def reader(self) -> KubernetesOrchestrator:
        orchestration = self.service.runtime.orchestration
        assert orchestration is not None
        assert isinstance(orchestration.reader, KubernetesOrchestrator)
        return orchestration.reader

    def findings(self) -> list[StoredFinding]:
        """One run of the target checks (the scheduler's job), then every finding stored."""
        self.service.check_now()
        with self.service.runtime.database.reader() as session:
            return list_findings(session, limit=1000)

    def open_capacity(self) -> dict[tuple[str, str], StoredFinding]:
        """The open capacity findings after one run, by (kind, service)."""
        return {
            (f.kind, f.subject.removeprefix("service/")): f
            for f in self.findings()
            if f.kind.startswith("capacity.") and f.resolved_at is None
        }

    def wait_open(
        self, kind: str, service: str, *, timeout: float = CHANGE_TIMEOUT
    ) -> StoredFinding:
        found: dict[tuple[str, str], StoredFinding] = {}

        def opened() -> bool:
            found.update(self.open_capacity())
            return (kind, service) in found

        wait_for(opened, timeout=timeout, what=f"{kind} opened for {service}")
        return found[(kind, service)]

    def wait_resolved(self, kind: str, service: str, *, timeout: float = CHANGE_TIMEOUT) -> None:
        """Until that finding is resolved and no other capacity finding is open either."""
        still: dict[tuple[str, str], StoredFinding] = {}

        def cleared() -> bool:
            still.clear()
            still.update(self.open_capacity())
            return not still

        try:
            wait_for(cleared, timeout=timeout, what=f"{kind} of {service} resolved")
        except AssertionError as exc:
            left = "; ".join(f"{k} {s}: {f.summary}" for (k, s), f in sorted(still.items()))
            raise AssertionError(f"{exc}; still open: {left}") from None
        resolved = [
            f
            for f in self.findings()
            if (f.kind, f.subject) == (kind, f"service/{service}") and f.resolved_at is not None
        ]
        assert resolved, f"{kind} of {service} was never stored"


@contextmanager
def control_plane_on(
    cluster: KubernetesCluster, folder: Path, *, namespace: str = NAMESPACE
) -> Iterator[ControlPlane]:
    """A control plane configured for the Kubernetes orchestrator of ``namespace``, with the
    ``controlplane`` ServiceAccount's token (what deploy/k8s gives its pod), leading."""
    kubeconfig = cluster.service_account_kubeconfig(
        folder / "controlplane.kubeconfig", namespace=NAMESPACE, name="controlplane"
    )
    settings = ControlPlaneSettings.model_validate(
        {
            "store": {"data_dir": folder / "controlplane"},
            "leader": {"leader_acquire_interval_seconds": 0.2},
            "orchestrator": {
                "kind": "kubernetes",
                "kubernetes_namespace": namespace,
                "kubernetes_kubeconfig": kubeconfig,
            },
        }
    )
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        service = EvaluationService.from_settings(
            settings, runtime=runtime, metrics=ControlPlaneMetrics(process=False)
        )
        wait_for(
            lambda: runtime.leadership.status().is_leader,
            timeout=10,
            what="the control plane leads",
        )
        yield ControlPlane(service=service, cluster=cluster)
    finally:
        runtime.stop()


@pytest.fixture
def control_plane(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    tmp_path: Path,
) -> Iterator[ControlPlane]:
    with control_plane_on(kubernetes_cluster, tmp_path) as plane:
        # deploy/k8s as applied: nothing to report (and every test before put back its change).
        assert plane.open_capacity() == {}
        yield plane


@pytest.fixture
def api(kubernetes_cluster: KubernetesCluster) -> Iterator[k8s.ApiClient]:
    client = admin_client(kubernetes_cluster)
    try:
        yield client
    finally:
        client.close()


def kubectl(cluster: KubernetesCluster, *args: str) -> str:
    """kubectl as the admin, in the inventory namespace."""
    return cluster.kubectl(f"--namespace={NAMESPACE}", *args).stdout


def merge_patch(cluster: KubernetesCluster, target: str, patch: dict[str, Any]) -> None:
    kubectl(cluster, "patch", target, "--type=merge", f"--patch={json.dumps(patch)}")


def rolled_out(cluster: KubernetesCluster, deployment: str) -> None:
    kubectl(cluster, "rollout", "status", f"deployment/{deployment}", "--timeout=90s")


def cpu_target(percent: int) -> list[dict[str, Any]]:
    """An HPA's ``metrics``: average CPU utilisation at ``percent``."""
    return [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": percent},
            },
        }
    ]


def test_hpa_bounds_and_cpu_target_changed_with_kubectl_are_drift_seen_through_the_watch(
    control_plane: ControlPlane,
) -> None:
    cluster, autoscalers = control_plane.cluster, control_plane.reader.autoscalers
    events = autoscalers.events
    merge_patch(cluster, "hpa/inventory", {"spec": {"maxReplicas": 12, "metrics": cpu_target(60)}})
    try:
        drift = control_plane.wait_open("capacity.hpa_drift", "inventory")
        assert drift.evidence == {
            "autoscaler": "inventory",
            "differences": {
                "max_replicas": {"policy": 20, "live": 12},
                "target_cpu_percent": {"policy": 70, "live": 60},
            },
        }
        # The change reached the orchestrator as a watch event: its cache holds the new HPA and
        # was listed once, when the control plane first read it.
        cached = {hpa.metadata.name: hpa for hpa in autoscalers.items()}["inventory"]
        assert cached.spec.max_replicas == 12
        assert autoscalers.events > events
        assert autoscalers.lists == 1
    finally:
        merge_patch(
            cluster, "hpa/inventory", {"spec": {"maxReplicas": 20, "metrics": cpu_target(70)}}
        )
    control_plane.wait_resolved("capacity.hpa_drift", "inventory")
    assert autoscalers.lists == 1


def test_container_resources_set_with_kubectl_are_drift_until_set_back(
    control_plane: ControlPlane, inventory_on_kubernetes: list[dict[str, Any]]
) -> None:
    cluster, deployments = control_plane.cluster, control_plane.reader.deployments
    events = deployments.events
    target = ("deployment/analytics", "--containers=analytics")
    kubectl(cluster, "set", "resources", *target, "--requests=cpu=1500m,memory=3Gi")
    try:
        rolled_out(cluster, "analytics")
        drift = control_plane.wait_open("capacity.resources_drift", "analytics")
        assert drift.evidence == {
            "differences": {
                "requests": {
                    "policy": {"cpu": "1000m", "memory": "2Gi"},
                    "live": {"cpu": "1500m", "memory": "3Gi"},
                }
            }
        }
        assert deployments.events > events
        assert deployments.lists == 1
    finally:
        kubectl(cluster, "set", "resources", *target, "--requests=cpu=1,memory=2Gi")
        rolled_out(cluster, "analytics")
    control_plane.wait_resolved("capacity.resources_drift", "analytics")
    (applied,) = [
        o
        for o in inventory_on_kubernetes
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "analytics"
    ]
    live = json.loads(kubectl(cluster, "get", "deployment/analytics", "--output=json"))
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert (
        container["resources"] == applied["spec"]["template"]["spec"]["containers"][0]["resources"]
    )


def test_pods_held_not_ready_are_replicas_not_ready_until_released(
    control_plane: ControlPlane, api: k8s.ApiClient
) -> None:
    cluster = control_plane.cluster
    selector = "app.kubernetes.io/name=demand-planning"
    pods = [
        p.metadata.name
        for p in k8s.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=selector).items
    ]
    assert len(pods) == 2
    try:
        kubectl(cluster, "label", "pod", pods[0], f"{NOT_READY_LABEL}=true")
        one_down = control_plane.wait_open("capacity.replicas_not_ready", "demand-planning")
        assert (one_down.severity, one_down.evidence) == ("warning", {"ready": 1, "desired": 2})

        kubectl(cluster, "label", "pod", pods[1], f"{NOT_READY_LABEL}=true")

        def none_ready() -> bool:
            found = control_plane.open_capacity().get(
                ("capacity.replicas_not_ready", "demand-planning")
            )
            return found is not None and found.evidence == {"ready": 0, "desired": 2}

        wait_for(none_ready, timeout=CHANGE_TIMEOUT, what="no demand-planning replica ready")
        (stored,) = [
            f
            for f in control_plane.findings()
            if f.kind == "capacity.replicas_not_ready" and f.resolved_at is None
        ]
        assert stored.severity == "critical"  # no replica serves at all
    finally:
        for pod in pods:
            kubectl(cluster, "label", "pod", pod, f"{NOT_READY_LABEL}-")
    control_plane.wait_resolved("capacity.replicas_not_ready", "demand-planning")


def _hpa_cpu(api: k8s.ApiClient, name: str) -> tuple[int | None, int, list[str]]:
    """(current CPU utilisation, current replicas, conditions) the HPA controller reports."""
    hpa = k8s.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(name, NAMESPACE)
    status = hpa.status
    current = None
    for metric in status.current_metrics or []:
        if metric.type == "Resource" and metric.resource.name == "cpu":
            current = metric.resource.current.average_utilization
    conditions = [f"{c.type}={c.status} ({c.reason}: {c.message})" for c in status.conditions or []]
    return current, int(status.current_replicas or 0), conditions


def wait_for_hpa(
    api: k8s.ApiClient, name: str, *, reached: Any, what: str, timeout: float = METRICS_TIMEOUT
) -> None:
    """Until ``reached(cpu, replicas)`` holds for what the HPA controller reports; failing, the
    message carries the HPA's status conditions (why metrics did not arrive)."""
    try:
        wait_for(lambda: reached(*_hpa_cpu(api, name)[:2]), timeout=timeout, what=what)
    except AssertionError as exc:
        cpu, replicas, conditions = _hpa_cpu(api, name)
        raise AssertionError(
            f"{exc}; HPA {name}: CPU {cpu} % at {replicas} replicas; conditions: "
            + "; ".join(conditions)
        ) from None


def test_at_the_hpa_maximum_with_cpu_over_target_from_metrics_is_a_capacity_risk(
    control_plane: ControlPlane, api: k8s.ApiClient
) -> None:
    cluster = control_plane.cluster
    busy = {"spec": {"template": {"metadata": {"annotations": {CPU_USAGE_ANNOTATION: "900m"}}}}}
    idle = {"spec": {"template": {"metadata": {"annotations": {CPU_USAGE_ANNOTATION: None}}}}}
    # No room above the 3 replicas it runs, and each pod using 900m of its 200m request.
    merge_patch(cluster, "hpa/inventory", {"spec": {"maxReplicas": 3}})
    try:
        merge_patch(cluster, "deployment/inventory", busy)
        rolled_out(cluster, "inventory")
        # The real HPA controller, from metrics-server's figures for the new pods.
        wait_for_hpa(
            api,
            "inventory",
            reached=lambda cpu, replicas: cpu is not None and cpu > 70 and replicas == 3,
            what="the inventory HPA reporting CPU over its 70 % target at 3 replicas",
        )
        risk = control_plane.wait_open("capacity.at_max_replicas", "inventory")
        assert risk.severity == "critical"
        assert (risk.evidence["replicas"], risk.evidence["max_replicas"]) == (3, 3)
        assert risk.evidence["target_cpu_percent"] == 70
        assert risk.evidence["cpu_percent"] > 70
        # The lowered maximum is drift of its own.
        assert ("capacity.hpa_drift", "inventory") in control_plane.open_capacity()
    finally:
        merge_patch(cluster, "deployment/inventory", idle)
        rolled_out(cluster, "inventory")
        # The maximum goes back once the CPU is down, or the HPA would scale up to it.
        wait_for_hpa(
            api,
            "inventory",
            reached=lambda cpu, replicas: cpu is not None and cpu <= 70,
            what="the inventory HPA reporting CPU under target again",
        )
        merge_patch(cluster, "hpa/inventory", {"spec": {"maxReplicas": 20}})
    control_plane.wait_resolved("capacity.at_max_replicas", "inventory")


def test_a_deleted_hpa_is_missing_until_applied_again(
    control_plane: ControlPlane, inventory_on_kubernetes: list[dict[str, Any]]
) -> None:
    cluster = control_plane.cluster
    (hpa,) = [
        o
        for o in inventory_on_kubernetes
        if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == "analytics"
    ]
    kubectl(cluster, "delete", "hpa/analytics")
    try:
        missing = control_plane.wait_open("capacity.hpa_missing", "analytics")
        assert missing.evidence == {"policy": {"min": 2, "max": 8}}
    finally:
        # As deployed: server-side apply of the same object (controlplane/stack/k8s).
        cluster.apply([hpa], field_manager="deploy")
    control_plane.wait_resolved("capacity.hpa_missing", "analytics")


def test_a_namespace_the_service_account_may_not_read_is_recorded_and_judges_nothing(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    with control_plane_on(kubernetes_cluster, tmp_path, namespace="kube-system") as plane:
        found = plane.findings()
    capacity = [f for f in found if f.kind.startswith("capacity.")]
    assert capacity == []  # not "every workload missing": nothing could be judged
    (unreadable,) = [
        f
        for f in found
        if (f.kind, f.subject) == (INPUT_UNAVAILABLE, "check/capacity/orchestrator")
    ]
    assert "403" in unreadable.evidence["error"]


def watch_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("watch-") and t.is_alive()}


def test_stopping_the_control_plane_ends_its_watches(
    kubernetes_cluster: KubernetesCluster,
    inventory_on_kubernetes: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    before = watch_threads()
    with control_plane_on(kubernetes_cluster, tmp_path) as plane:
        assert plane.open_capacity() == {}
        started = watch_threads() - before
        assert {t.name for t in started} == {
            "watch-deployments",
            "watch-horizontalpodautoscalers",
        }
    assert not any(t.is_alive() for t in started)
