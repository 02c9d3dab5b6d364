"""Fixed inputs for the console's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.client.models import (
    Alert,
    AuditEntry,
    Capacity,
    DatabaseDR,
    ServiceCapacity,
    SLOStatus,
)
from slo.durations import format_duration, parse_duration
from slo.maths import both_windows_burning, default_burn_rate_windows

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def evaluated_alerts(
    burn_rates: dict[str, float | None], *, period: timedelta = timedelta(days=30)
) -> list[dict[str, Any]]:
    """The alerts the control plane stores for these burn rates: the SRE Workbook windows of
    the period, firing by the one rule of ``slo.maths``."""
    alerts = []
    for window in default_burn_rate_windows(period):
        long = burn_rates.get(format_duration(window.long))
        short = burn_rates.get(format_duration(window.short))
        alerts.append(
            {
                "severity": window.severity,
                "long": format_duration(window.long),
                "short": format_duration(window.short),
                "factor": window.factor,
                "firing": both_windows_burning(window, long_burn=long, short_burn=short),
                "state": "ok" if long is not None and short is not None else "no_data",
            }
        )
    return alerts


def status(slo_id: str = "read-latency", **values: Any) -> SLOStatus:
    """An SLO's status as the API serves it; unless ``details`` gives its own ``alerts``, they
    are the control plane's verdicts for the burn rates."""
    fields: dict[str, Any] = {
        "slo_id": slo_id,
        "service": "inventory",
        "state": "ok",
        "evaluated_at": NOW,
        "stale": False,
        "sli": 0.999,
        "objective": 0.99,
        "budget_remaining": 0.8,
        "burn_rates": {"5m": 0.5, "30m": 0.5, "1h": 0.5, "2h": 0.5, "6h": 0.5, "1d": 0.5},
        "no_data_reason": None,
        "details": {"tier": "critical"},
        **values,
    }
    details = dict(fields["details"])
    if "alerts" not in details:
        period = parse_duration(details.get("period", "30d"))
        details["alerts"] = evaluated_alerts(fields["burn_rates"], period=period)
    fields["details"] = details
    return SLOStatus.model_validate(fields)


def alert(**values: Any) -> Alert:
    fields: dict[str, Any] = {
        "id": 1,
        "fingerprint": "f1",
        "starts_at": NOW - timedelta(hours=2),
        "status": "firing",
        "ends_at": None,
        "alertname": "SLOBurnRateHigh",
        "severity": "page",
        "labels": {"slo": "read-latency", "service": "inventory"},
        "annotations": {"summary": "burning"},
        "repeat_count": 0,
        "closed_at": None,
        **values,
    }
    return Alert.model_validate(fields)


def audit(**values: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "id": 1,
        "decision_id": "d1",
        "at": NOW - timedelta(hours=1),
        "actor": "controlplane",
        "action": "scale_out",
        "target": "deployment/inventory",
        "decision": "taken",
        "reason": "burning",
        "evidence": {"service": "inventory"},
        "fencing_token": 1,
        "dry_run": False,
        "outcome": None,
        "outcome_detail": None,
        "outcome_at": None,
        **values,
    }
    return AuditEntry.model_validate(fields)


def capacity_service(service: str = "inventory", **live: Any) -> ServiceCapacity:
    return ServiceCapacity.model_validate(
        {
            "service": service,
            "tier": "critical",
            "policy": {
                "min_replicas": 3,
                "max_replicas": 20,
                "target_cpu_percent": 70,
                "requests": {"cpu": "200m", "memory": "512Mi"},
                "limits": {"cpu": "1000m", "memory": "2Gi"},
            },
            "live": {
                "current_replicas": 4,
                "desired_replicas": 5,
                "ready_replicas": 4,
                "cpu_percent": 85,
                "autoscaler": {"min_replicas": 3, "max_replicas": 10, "target_cpu_percent": 70},
                **live,
            },
            "observed_at": NOW.isoformat(),
        }
    )


def workload(name: str = "inventory", **values: Any) -> dict[str, Any]:
    """A workload as ``/capacity`` lists it: by default a Deployment of the policy with its
    HPA (CPU above target)."""
    return {
        "name": name,
        "service": name,
        "in_policy": True,
        "desired_replicas": 5,
        "current_replicas": 5,
        "ready_replicas": 5,
        "cpu_percent": 85,
        "autoscaler": {
            "name": name,
            "min_replicas": 3,
            "max_replicas": 20,
            "target_cpu_percent": 70,
            "current_cpu_percent": 85,
            "desired_replicas": 6,
        },
        "resources": {
            "cpu_request": "200m",
            "memory_request": "512Mi",
            "cpu_limit": "1",
            "memory_limit": "2Gi",
        },
        **values,
    }


def capacity(
    *, orchestrator: dict[str, Any] | None, workloads: list[dict[str, Any]] | None
) -> Capacity:
    return Capacity.model_validate(
        {
            "services": [capacity_service().model_dump(mode="json")],
            "error": None,
            "orchestrator": orchestrator,
            "workloads": workloads,
            "observed_at": NOW.isoformat(),
        }
    )


KUBERNETES = {
    "kind": "kubernetes",
    "location": "https://127.0.0.1:6443",
    "namespace": "inventory",
    "version": "v1.36.3",
}


def database(**values: Any) -> DatabaseDR:
    fields: dict[str, Any] = {
        "database": "inventory",
        "tier": "critical",
        "rto_s": 900,
        "rpo_s": 300,
        "replicas": [
            {"name": "replica1", "state": "streaming", "lag_bytes": 1024, "replay_lag_s": 2.5},
            {"name": "replica2", "state": "streaming", "lag_bytes": None, "replay_lag_s": 400.0},
        ],
        "error": None,
        "drills": [
            {
                "kind": "failover",
                "finished_at": (NOW - timedelta(days=3)).isoformat(),
                "measured_rto_s": 12.5,
                "measured_rpo_s": 0.0,
                "lost_acknowledged_writes": 0,
                "succeeded": True,
            },
            {
                "kind": "switchover",
                "finished_at": (NOW - timedelta(days=1)).isoformat(),
                "measured_rto_s": 1200.0,
                "measured_rpo_s": None,
                "lost_acknowledged_writes": None,
                "succeeded": False,
            },
        ],
        "last_restore_validation": (NOW - timedelta(days=10)).isoformat(),
        **values,
    }
    return DatabaseDR.model_validate(fields)
