"""What the control plane reads from (and later tells) the orchestrator, whatever it is.

Adapters: ``kubernetes`` (Deployments + HPAs through the official client) and ``local`` (the
app's gunicorn master and its worker processes). Unknown values are ``None``, never zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

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
    #: The orchestrator's own name of the workload (a Deployment's ``metadata.name``); None
    #: where it has none but the service's.
    name: str | None = None
    desired_replicas: int
    ready_replicas: int
    current_replicas: int
    #: Average CPU use as a percent of the request, if the orchestrator knows it.
    cpu_percent: int | None
    autoscaler: AutoscalerState | None
    resources: ContainerResources | None


@dataclass(frozen=True, kw_only=True)
class OrchestratorInfo:
    """Which orchestrator is read, and where: shown next to the live state so an operator can
    tell which cluster (or which local master) the numbers come from."""

    kind: Literal["kubernetes", "local"]
    #: Where it is read: the Kubernetes API server's URL, or the local gunicorn pidfile.
    location: str
    #: The Kubernetes namespace read; None locally.
    namespace: str | None
    #: The API server's ``gitVersion`` (``v1.36.3``); None when unreadable or not applicable.
    version: str | None


class Orchestrator(Protocol):
    @property
    def has_autoscalers(self) -> bool:
        """Whether services can have autoscalers here (Kubernetes HPAs); without any, the
        capacity check expects none and holds the live replicas to the policy's bounds."""

    def workloads(self) -> list[WorkloadState]:
        """Every workload the orchestrator runs where the control plane looks (a Kubernetes
        namespace: also those outside the capacity policy)."""

    def describe(self) -> OrchestratorInfo:
        """Kind, location and version; never raises (an unreadable version is None)."""

    def close(self) -> None:
        """Release what reading holds open (the Kubernetes watches); called once, at the end."""
