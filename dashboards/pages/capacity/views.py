"""Capacity components from data (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from dash import html

from controlplane.client.models import ServiceCapacity
from dashboards.ui import DASH, table, utc

__all__ = ["capacity_table"]


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
