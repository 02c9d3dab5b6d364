"""Capacity components from data (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from dash import html

from controlplane.client.models import (
    Capacity,
    OrchestratorInfo,
    ServiceCapacity,
    Workload,
    WorkloadResources,
)
from dashboards.ui import DASH, empty_state, no_data_state, table, utc

__all__ = ["capacity_table", "orchestrator_line", "workloads_section", "workloads_table"]


def _bounds(low: int | None, high: int | None) -> str:
    if low is None or high is None:
        return DASH
    return f"{low}–{high}"


def _number(value: int | None) -> str:
    return DASH if value is None else str(value)


def capacity_table(services: Sequence[ServiceCapacity]) -> html.Table:
    rows = []
    attributes = []
    for service in services:
        policy = service.policy
        live = service.live
        autoscaler = None if live is None else live.autoscaler
        policy_bounds = _bounds(policy.min_replicas, policy.max_replicas)
        if live is None:
            hpa: str | html.Span = html.Span("not observed", className="no-data")
        elif autoscaler is None and not live.has_autoscalers:
            hpa = html.Span("none (no HPA locally)", className="no-data")
        elif autoscaler is None:
            hpa = html.Span("no HPA", className="drift")
        else:
            live_bounds = _bounds(autoscaler.min_replicas, autoscaler.max_replicas)
            drift = (autoscaler.min_replicas, autoscaler.max_replicas) != (
                policy.min_replicas,
                policy.max_replicas,
            ) or autoscaler.target_cpu_percent != policy.target_cpu_percent
            hpa = html.Span(
                f"{live_bounds} @ {_number(autoscaler.target_cpu_percent)} %"
                + (" (drift)" if drift else ""),
                className="drift" if drift else "",
            )
        cpu = None if live is None else live.cpu_percent
        over = cpu is not None and cpu > policy.target_cpu_percent
        rows.append(
            [
                service.service,
                service.tier,
                _number(None if live is None else live.current_replicas),
                _number(None if live is None else live.desired_replicas),
                _number(None if live is None else live.ready_replicas),
                f"{policy_bounds} @ {policy.target_cpu_percent} %",
                hpa,
                html.Span(
                    f"{_number(cpu)} % / {policy.target_cpu_percent} %"
                    if cpu is not None
                    else f"no data / {policy.target_cpu_percent} %",
                    className="burn-over" if over else "",
                ),
                f"{policy.requests.cpu}/{policy.requests.memory} · "
                f"{policy.limits.cpu}/{policy.limits.memory}",
                utc(service.observed_at),
            ]
        )
        attributes.append({"data-service": service.service})
    return table(
        header=[
            "Service",
            "Tier",
            "Current",
            "Desired",
            "Ready",
            "Policy (min–max @ CPU)",
            "Live HPA",
            "CPU / target",
            "Requests · limits",
            "Observed",
        ],
        rows=rows,
        row_attributes=attributes,
        class_name="grid capacity-table",
    )


def orchestrator_line(info: OrchestratorInfo | None) -> str:
    """Where the live numbers come from, on one line: ``Kubernetes v1.36.3 · namespace
    inventory · https://…`` or the local gunicorn master's pidfile, so an operator sees at once
    which cluster (or which machine) the page describes."""
    if info is None:
        return "The control plane does not say which orchestrator it reads"
    if info.kind is None:
        return "No orchestrator configured: replicas and CPU are not read"
    if info.kind == "local":
        return f"Local gunicorn master (no Kubernetes) · pidfile {info.location or DASH}"
    return " · ".join(
        [
            f"Kubernetes {info.version or '(version unknown)'}",
            f"namespace {info.namespace or DASH}",
            info.location or DASH,
        ]
    )


def _quantities(resources: WorkloadResources | None) -> str:
    if resources is None:
        return DASH

    def pair(cpu: str | None, memory: str | None) -> str:
        return f"{cpu or DASH}/{memory or DASH}"

    return (
        f"{pair(resources.cpu_request, resources.memory_request)} · "
        f"{pair(resources.cpu_limit, resources.memory_limit)}"
    )


def _workload_cpu(workload: Workload) -> str | html.Span:
    autoscaler = workload.autoscaler
    target = None if autoscaler is None else autoscaler.target_cpu_percent
    current = workload.cpu_percent
    if target is None:  # no HPA: nothing to measure against (and, on Kubernetes, no CPU read)
        return DASH if current is None else f"{current} %"
    shown = "no data" if current is None else f"{current} %"
    over = current is not None and current > target
    return html.Span(f"{shown} / {target} %", className="burn-over" if over else "")


def workloads_table(workloads: Sequence[Workload]) -> html.Table:
    """The orchestrator's workloads (a cluster's Deployments) with their HPAs: bounds, target
    and current CPU, replicas ready of desired; those the capacity policy does not cover are
    marked (no finding is raised for them, so this is where they show)."""
    rows = []
    attributes = []
    for workload in workloads:
        autoscaler = workload.autoscaler
        ready = f"{workload.ready_replicas}/{workload.desired_replicas}"
        rows.append(
            [
                workload.name,
                "covered"
                if workload.in_policy
                else html.Span("outside the policy", className="outside-policy"),
                html.Span(ready, className="drift")
                if workload.ready_replicas < workload.desired_replicas
                else ready,
                str(workload.current_replicas),
                html.Span("no HPA", className="no-data")
                if autoscaler is None
                else f"{autoscaler.name}: "
                f"{_bounds(autoscaler.min_replicas, autoscaler.max_replicas)}",
                _workload_cpu(workload),
                _number(None if autoscaler is None else autoscaler.desired_replicas),
                _quantities(workload.resources),
            ]
        )
        attributes.append(
            {"data-workload": workload.name, "data-in-policy": str(workload.in_policy).lower()}
        )
    return table(
        header=[
            "Deployment",
            "Capacity policy",
            "Ready / desired",
            "Current",
            "HPA (min–max)",
            "CPU / target",
            "HPA desired",
            "Requests · limits",
        ],
        rows=rows,
        row_attributes=attributes,
        class_name="grid workloads-table",
    )


def workloads_section(capacity: Capacity) -> html.Div | None:
    """The cluster's Deployments under the policy's table, on Kubernetes only: locally the one
    gunicorn master is the policy's row already, and the header line says it is local."""
    info = capacity.orchestrator
    if info is None or info.kind != "kubernetes":
        return None
    title = html.H3(f"Deployments in namespace {info.namespace or DASH}")
    if capacity.workloads is None:
        return html.Div([title, no_data_state("the cluster's Deployments could not be read")])
    if not capacity.workloads:
        return html.Div([title, empty_state("no Deployments in this namespace")])
    outside = sum(not workload.in_policy for workload in capacity.workloads)
    return html.Div(
        [
            title,
            html.Div(
                f"{len(capacity.workloads)} Deployments, {outside} outside the capacity policy "
                f"· read {utc(capacity.observed_at)}",
                className="muted",
            ),
            workloads_table(capacity.workloads),
        ]
    )
