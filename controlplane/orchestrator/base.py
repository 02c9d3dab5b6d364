"""What the control plane reads from (and later tells) the orchestrator, whatever it is.

Adapters: ``kubernetes`` (Deployments + HPAs through the official client) and ``local`` (the
app's gunicorn master and its worker processes). Unknown values are ``None``, never zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controlplane.core.errors import ControlPlaneError


class OrchestratorError(ControlPlaneError):
    """The orchestrator could not be read."""


@dataclass(frozen=True, kw_only=True)
class ContainerResources:
    cpu_request: str | None
    memory_request: str | None
    cpu_limit: str | None
    memory_limit: str | None


@dataclass(frozen=True, kw_only=True)
class AutoscalerState:
    name: str
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int | None
    current_cpu_percent: int | None
    desired_replicas: int | None


@dataclass(frozen=True, kw_only=True)
class WorkloadState:
    """One service as the orchestrator sees it."""

    service: str
    desired_replicas: int
    ready_replicas: int
    current_replicas: int
    #: Average CPU use as a percent of the request, if the orchestrator knows it.
    cpu_percent: int | None
    autoscaler: AutoscalerState | None
    resources: ContainerResources | None


class Orchestrator(Protocol):
    @property
    def has_autoscalers(self) -> bool:
        """Whether services can have autoscalers here (Kubernetes HPAs); without any, the
        capacity check expects none and holds the live replicas to the policy's bounds."""

    def workloads(self) -> list[WorkloadState]:
        """Every workload the control plane is responsible for."""

    def close(self) -> None:
        """Release what reading holds (Kubernetes: its watch threads); the runtime calls it on
        shutdown."""
