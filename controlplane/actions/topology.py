"""Live reads the API and the engine share: workloads from the orchestrator, replication status."""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controlplane.actions.config import ActionSettings
from controlplane.actuators.base import Actuator, ActuatorError
from controlplane.actuators.kubernetes import KubernetesActuator
from controlplane.actuators.local import LocalGunicornActuator
from controlplane.orchestrator.base import OrchestratorError, WorkloadState
from controlplane.orchestrator.kubernetes import KubernetesOrchestrator


def kubernetes_client() -> k8s.ApiClient:
    """In-cluster credentials when running in a pod, else the local kubeconfig."""
    try:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
    return k8s.ApiClient()


def actuator_for(settings: ActionSettings) -> Actuator | None:
    """The actuator of the configured orchestrator (None: nothing can be scaled)."""
    if settings.orchestrator == "kubernetes":
        try:
            api_client = kubernetes_client()
        except k8s_config.ConfigException as exc:
            raise ValueError(
                f"CONTROLPLANE_ORCHESTRATOR=kubernetes: no in-cluster credentials and no "
                f"usable kubeconfig ({exc})"
            ) from exc
        return KubernetesActuator(api_client=api_client, namespace=settings.kubernetes_namespace)
    if settings.orchestrator == "local":
        if settings.local_pidfile is None:
            raise ValueError("CONTROLPLANE_ORCHESTRATOR=local needs CONTROLPLANE_LOCAL_PIDFILE")
        return LocalGunicornActuator(pidfile=settings.local_pidfile, service=settings.local_service)
    return None


def read_workloads(settings: ActionSettings) -> list[WorkloadState]:
    """The workloads the configured orchestrator runs; raises OrchestratorError if unreadable."""
    if settings.orchestrator == "kubernetes":
        orchestrator = KubernetesOrchestrator(
            api_client=kubernetes_client(), namespace=settings.kubernetes_namespace
        )
        return orchestrator.workloads()
    if settings.orchestrator == "local":
        if settings.local_pidfile is None:
            raise OrchestratorError("orchestrator=local needs CONTROLPLANE_LOCAL_PIDFILE")
        actuator = LocalGunicornActuator(
            pidfile=settings.local_pidfile, service=settings.local_service
        )
        try:
            workers = actuator.current_replicas(settings.local_service)
        except ActuatorError as exc:
            raise OrchestratorError(str(exc)) from exc
        return [
            WorkloadState(
                service=settings.local_service,
                desired_replicas=workers,
                ready_replicas=workers,
                current_replicas=workers,
                cpu_percent=None,
                autoscaler=None,
                resources=None,
            )
        ]
    return []
