"""Capacity checks: the live workloads against the capacity policy (pure, no I/O).

Findings (kind → when):

* ``capacity.workload_missing`` — a service of the policy is not found in the orchestrator.
* ``capacity.replicas_not_ready`` — fewer ready replicas than desired.
* ``capacity.replicas_outside_policy`` — fewer replicas run than the policy's minimum, or more
  than its maximum.
* ``capacity.hpa_drift`` — the autoscaler's min / max / CPU target differ from the policy.
* ``capacity.hpa_missing`` — the service has no autoscaler although the policy bounds it (only
  for an orchestrator that has autoscalers: a local gunicorn master has none to have).
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


def _outside_bounds(policy: ServicePolicy, live: WorkloadState) -> Finding | None:
    bounds = policy.replicas
    if bounds.min <= live.current_replicas <= bounds.max:
        return None
    side = (
        f"below the policy's minimum of {bounds.min}"
        if live.current_replicas < bounds.min
        else f"above the policy's maximum of {bounds.max}"
    )
    return Finding(
        kind="capacity.replicas_outside_policy",
        subject=f"service/{policy.name}",
        severity="warning",
        summary=f"{policy.name}: {live.current_replicas} replicas, {side}",
        evidence={"replicas": live.current_replicas, "policy": bounds.model_dump()},
    )


def check_workload(
    policy: ServicePolicy, live: WorkloadState, *, autoscalers: bool = True
) -> list[Finding]:
    """Findings of one live workload; ``autoscalers`` says whether the orchestrator has
    autoscalers at all (if not, a missing one is no finding)."""
    subject = f"service/{policy.name}"
    findings: list[Finding] = []
    outside = _outside_bounds(policy, live)
    if outside is not None:
        findings.append(outside)
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
    if hpa is None and autoscalers:
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
    elif hpa is not None:
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
    autoscalers: bool = True,
) -> list[Finding]:
    """Every capacity finding for the live ``workloads`` under ``policy``.

    ``services`` limits the check to the services this orchestrator runs (a local stack runs
    only the inventory API); by default every service of the policy is expected.
    ``autoscalers`` is false for an orchestrator that has none (the local one): then no
    autoscaler is expected, and the policy's bounds apply to the live replicas alone.
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
        findings.extend(check_workload(service, state, autoscalers=autoscalers))
    return findings
