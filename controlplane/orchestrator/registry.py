"""One factory for the orchestrator the settings name (``CONTROLPLANE_ORCHESTRATOR``).

:func:`build_orchestration` turns the ``orchestrator`` settings group into an
:class:`Orchestration`: the reader (what runs, an
:class:`~controlplane.orchestrator.base.Orchestrator`) and the actuator (what changes it, an
:class:`~controlplane.actuators.base.Actuator`) of one kind.
The runtime builds it once; the capacity check, ``/api/v1/capacity`` and the action engine all
use that one pair, so they give one answer (the local reader's CPU, which needs two samples, is
the same for the API and the check). A kind is one entry of :data:`BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from controlplane.actuators.base import Actuator
from controlplane.actuators.local import LocalGunicornActuator
from controlplane.core.config import OrchestratorKind, OrchestratorSettings, SettingsError
from controlplane.orchestrator.base import Orchestrator
from controlplane.orchestrator.local import LocalOrchestrator

__all__ = ["BUILDERS", "Orchestration", "build_orchestration"]


@dataclass(frozen=True, kw_only=True)
class Orchestration:
    """The reader and the actuator of one orchestrator."""

    kind: OrchestratorKind
    reader: Orchestrator
    actuator: Actuator
    #: The services it runs; None: every service of the capacity policy.
    services: frozenset[str] | None


def _local(settings: OrchestratorSettings) -> Orchestration:
    if settings.local_pidfile is None:  # the settings refuse this; kept for the type checker
        raise SettingsError("CONTROLPLANE_ORCHESTRATOR=local needs CONTROLPLANE_LOCAL_PIDFILE")
    service = settings.local_service
    return Orchestration(
        kind="local",
        reader=LocalOrchestrator(
            pidfile=settings.local_pidfile,
            service=service,
            desired_replicas=settings.local_replicas,
            min_replicas=settings.local_min_replicas,
            max_replicas=settings.local_max_replicas,
            target_cpu_percent=settings.local_target_cpu_percent,
        ),
        actuator=LocalGunicornActuator(pidfile=settings.local_pidfile, service=service),
        services=frozenset({service}),
    )


def _kubernetes(settings: OrchestratorSettings) -> Orchestration:
    # Imported here: the Kubernetes client is large and only this kind needs it.
    from kubernetes.config import ConfigException

    from controlplane.actuators.kubernetes import KubernetesActuator
    from controlplane.orchestrator.kubernetes import KubernetesOrchestrator, kubernetes_client

    kubeconfig = settings.kubeconfig
    try:
        api_client = kubernetes_client(kubeconfig)
    except ConfigException as exc:
        where = (
            f"CONTROLPLANE_KUBECONFIG {kubeconfig} is not usable"
            if kubeconfig is not None
            else "no in-cluster credentials and no usable kubeconfig"
        )
        raise SettingsError(f"CONTROLPLANE_ORCHESTRATOR=kubernetes: {where} ({exc})") from exc
    namespace = settings.kubernetes_namespace
    return Orchestration(
        kind="kubernetes",
        reader=KubernetesOrchestrator(api_client=api_client, namespace=namespace),
        actuator=KubernetesActuator(api_client=api_client, namespace=namespace),
        services=None,
    )


#: How each kind is built (``none`` has no entry: nothing to read or scale).
BUILDERS: Mapping[OrchestratorKind, Callable[[OrchestratorSettings], Orchestration]] = {
    "local": _local,
    "kubernetes": _kubernetes,
}


def build_orchestration(settings: OrchestratorSettings) -> Orchestration | None:
    """The configured orchestrator, or None for ``none``. Raises SettingsError when the kind's
    settings cannot work (e.g. Kubernetes without credentials)."""
    builder = BUILDERS.get(settings.kind)
    return None if builder is None else builder(settings)
