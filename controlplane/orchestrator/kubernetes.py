"""Kubernetes adapter: Deployments and their HorizontalPodAutoscalers (autoscaling/v2).

Reads through the official ``kubernetes`` client. No API server runs in this project's test
environment yet, so the adapter is contract-tested: recorded API objects are deserialised by the
client itself and fed through the same code path.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from controlplane.orchestrator.base import (
    AutoscalerState,
    ContainerResources,
    OrchestratorError,
    WorkloadState,
)


def kubernetes_client() -> k8s.ApiClient:
    """In-cluster credentials when running in a pod, else the local kubeconfig (raises
    ``kubernetes.config.ConfigException`` when neither is usable)."""
    try:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
    return k8s.ApiClient()


def _cpu_target(hpa: Any) -> tuple[int | None, int | None]:
    """(target, current) average CPU utilisation in percent from an autoscaling/v2 HPA."""
    target = current = None
    for metric in hpa.spec.metrics or []:
        resource = metric.resource
        if (
            metric.type == "Resource"
            and resource is not None
            and resource.name == "cpu"
            and resource.target is not None
            and resource.target.type == "Utilization"
        ):
            target = resource.target.average_utilization
    status = hpa.status
    for metric in (status.current_metrics or []) if status is not None else []:
        resource = metric.resource
        if metric.type == "Resource" and resource is not None and resource.name == "cpu":
            current = resource.current.average_utilization if resource.current else None
    return target, current


def autoscaler_state(hpa: Any) -> AutoscalerState:
    target, current = _cpu_target(hpa)
    status = hpa.status
    return AutoscalerState(
        name=hpa.metadata.name,
        min_replicas=hpa.spec.min_replicas if hpa.spec.min_replicas is not None else 1,
        max_replicas=hpa.spec.max_replicas,
        target_cpu_percent=target,
        current_cpu_percent=current,
        desired_replicas=None if status is None else status.desired_replicas,
    )


def container_resources(
    deployment: Any, container_name: str | None = None
) -> ContainerResources | None:
    containers = deployment.spec.template.spec.containers or []
    chosen = (
        next((c for c in containers if c.name == container_name), None) if container_name else None
    )
    container = chosen or (containers[0] if containers else None)
    if container is None:
        return None
    resources = container.resources
    requests = (resources.requests or {}) if resources is not None else {}
    limits = (resources.limits or {}) if resources is not None else {}
    return ContainerResources(
        cpu_request=requests.get("cpu"),
        memory_request=requests.get("memory"),
        cpu_limit=limits.get("cpu"),
        memory_limit=limits.get("memory"),
    )


def workload_state(deployment: Any, hpa: Any | None) -> WorkloadState:
    status = deployment.status
    autoscaler = None if hpa is None else autoscaler_state(hpa)
    return WorkloadState(
        service=deployment.metadata.labels.get("app.kubernetes.io/name", deployment.metadata.name)
        if deployment.metadata.labels
        else deployment.metadata.name,
        desired_replicas=deployment.spec.replicas if deployment.spec.replicas is not None else 1,
        ready_replicas=(status.ready_replicas or 0) if status is not None else 0,
        current_replicas=(status.replicas or 0) if status is not None else 0,
        cpu_percent=None if autoscaler is None else autoscaler.current_cpu_percent,
        autoscaler=autoscaler,
        resources=container_resources(deployment),
    )


class KubernetesOrchestrator:
    """Deployments of one namespace, each paired with the HPA whose scaleTargetRef names it."""

    has_autoscalers = True

    def __init__(
        self, *, api_client: k8s.ApiClient, namespace: str, label_selector: str = ""
    ) -> None:
        self.namespace = namespace
        self.label_selector = label_selector
        self.apps = k8s.AppsV1Api(api_client)
        self.autoscaling = k8s.AutoscalingV2Api(api_client)

    def workloads(self) -> list[WorkloadState]:
        try:
            deployments: list[Any] = cast(
                list[Any],
                self.apps.list_namespaced_deployment(
                    self.namespace, label_selector=self.label_selector
                ).items,
            )
            hpas: list[Any] = cast(
                list[Any],
                self.autoscaling.list_namespaced_horizontal_pod_autoscaler(self.namespace).items,
            )
        except ApiException as exc:
            raise OrchestratorError(
                f"Kubernetes API refused to list namespace {self.namespace}: "
                f"{exc.status} {exc.reason}"
            ) from exc
        by_target = {
            hpa.spec.scale_target_ref.name: hpa
            for hpa in hpas
            if hpa.spec.scale_target_ref.kind == "Deployment"
        }
        return [workload_state(d, by_target.get(d.metadata.name)) for d in deployments]
