"""Capacity checks: the live workloads against the capacity policy (pure, no I/O).

Findings (kind → when):

* ``capacity.workload_missing`` — a service of the policy is not found in the orchestrator.
* ``capacity.replicas_not_ready`` — fewer ready replicas than desired.
* ``capacity.hpa_drift`` — the autoscaler's min / max / CPU target differ from the policy.
* ``capacity.hpa_missing`` — the service has no autoscaler although the policy bounds it.
* ``capacity.resources_drift`` — container requests / limits differ from the policy.
* ``capacity.at_max_replicas`` — running at the autoscaler's (or the policy's) maximum while CPU
  is above target: the service cannot grow any further (capacity risk).
"""

from __future__ import annotations

from typing import Any

from controlplane.orchestrator.base import ContainerResources, WorkloadState
from controlplane.targets.findings import Finding
from controlplane.targets.policy import CapacityPolicy, Quantities, ServicePolicy


def _resources_diff(policy: ServicePolicy, live: ContainerResources) -> dict[str, Any]:
    differences: dict[str, Any] = {}
    wanted = {
        "requests": policy.resources.requests,
        "limits": policy.resources.limits,
    }
    actual = {
        "requests": (live.cpu_request, live.memory_request),
        "limits": (live.cpu_limit, live.memory_limit),
    }
    for kind, quantities in wanted.items():
        cpu, memory = actual[kind]
        if cpu is None or memory is None:
            differences[kind] = {"policy": quantities.model_dump(), "live": None}
            continue
        if not quantities.same_as(Quantities(cpu=cpu, memory=memory)):
            differences[kind] = {
                "policy": quantities.model_dump(),
                "live": {"cpu": cpu, "memory": memory},
            }
    return differences


def check_workload(policy: ServicePolicy, live: WorkloadState) -> list[Finding]:
    subject = f"service/{policy.name}"
    findings: list[Finding] = []
    if live.ready_replicas < live.desired_replicas:
        findings.append(
            Finding(
                kind="capacity.replicas_not_ready",
                subject=subject,
                severity="critical" if live.ready_replicas == 0 else "warning",
                summary=(
                    f"{policy.name}: {live.ready_replicas} of {live.desired_replicas} "
                    "replicas ready"
                ),
                evidence={"ready": live.ready_replicas, "desired": live.desired_replicas},
            )
        )
    hpa = live.autoscaler
    if hpa is None:
        findings.append(
            Finding(
                kind="capacity.hpa_missing",
                subject=subject,
                severity="warning",
                summary=f"{policy.name}: no autoscaler; the policy bounds it to "
                f"{policy.replicas.min}-{policy.replicas.max} replicas",
                evidence={"policy": policy.replicas.model_dump()},
            )
        )
    else:
        drift: dict[str, Any] = {}
        if hpa.min_replicas != policy.replicas.min:
            drift["min_replicas"] = {"policy": policy.replicas.min, "live": hpa.min_replicas}
        if hpa.max_replicas != policy.replicas.max:
            drift["max_replicas"] = {"policy": policy.replicas.max, "live": hpa.max_replicas}
        if hpa.target_cpu_percent != policy.target_cpu_percent:
            drift["target_cpu_percent"] = {
                "policy": policy.target_cpu_percent,
                "live": hpa.target_cpu_percent,
            }
        if drift:
            findings.append(
                Finding(
                    kind="capacity.hpa_drift",
                    subject=subject,
                    severity="warning",
                    summary=f"{policy.name}: autoscaler {hpa.name} differs from the policy in "
                    + ", ".join(sorted(drift)),
                    evidence={"autoscaler": hpa.name, "differences": drift},
                )
            )
    if live.resources is not None:
        differences = _resources_diff(policy, live.resources)
        if differences:
            findings.append(
                Finding(
                    kind="capacity.resources_drift",
                    subject=subject,
                    severity="warning",
                    summary=f"{policy.name}: container "
                    + " and ".join(sorted(differences))
                    + " differ from the policy",
                    evidence={"differences": differences},
                )
            )
    ceiling = hpa.max_replicas if hpa is not None else policy.replicas.max
    target = hpa.target_cpu_percent if hpa is not None and hpa.target_cpu_percent else None
    target = target or policy.target_cpu_percent
    cpu = live.cpu_percent
    if cpu is None and hpa is not None:
        cpu = hpa.current_cpu_percent
    if live.current_replicas >= ceiling and cpu is not None and cpu > target:
        findings.append(
            Finding(
                kind="capacity.at_max_replicas",
                subject=subject,
                severity="critical",
                summary=f"{policy.name}: at its maximum of {ceiling} replicas with CPU at "
                f"{cpu} % (target {target} %): no room left to scale",
                evidence={
                    "replicas": live.current_replicas,
                    "max_replicas": ceiling,
                    "cpu_percent": cpu,
                    "target_cpu_percent": target,
                },
            )
        )
    return findings


def check_capacity(
    policy: CapacityPolicy,
    workloads: list[WorkloadState],
    *,
    services: frozenset[str] | None = None,
) -> list[Finding]:
    """Every capacity finding for the live ``workloads`` under ``policy``.

    ``services`` limits the check to the services this orchestrator runs (a local stack runs
    only the inventory API); by default every service of the policy is expected.
    """
    live = {w.service: w for w in workloads}
    findings: list[Finding] = []
    for service in policy.spec.services:
        if services is not None and service.name not in services:
            continue
        state = live.get(service.name)
        if state is None:
            findings.append(
                Finding(
                    kind="capacity.workload_missing",
                    subject=f"service/{service.name}",
                    severity="warning",
                    summary=f"{service.name}: not found in the orchestrator",
                    evidence={"namespace": policy.spec.namespace},
                )
            )
            continue
        findings.extend(check_workload(service, state))
    return findings
