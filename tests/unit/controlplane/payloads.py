"""Alertmanager webhook payloads for the receiver tests, shaped as Alertmanager 0.25 sends them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def webhook_alert(
    *,
    fingerprint: str = "5f3c2a1b0e9d8c7a",
    status: str = "firing",
    starts_at: str = "2025-11-20T10:00:00.123456789Z",
    ends_at: str = GO_ZERO_TIME,
    alertname: str = "ErrorBudgetBurn1h5m",
    severity: str = "page",
    slo: str = "api-availability",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": alertname,
            "service": "inventory",
            "slo": slo,
            "severity": severity,
            "tier": "critical",
        },
        "annotations": {"summary": f"{slo} burns its error budget"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=slo%3Aburn_rate%3Arate1h",
        "fingerprint": fingerprint,
    }


def webhook_payload(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    chosen = list(alerts) or [webhook_alert()]
    overall = status or (
        "firing" if any(alert["status"] == "firing" for alert in chosen) else "resolved"
    )
    return {
        "version": "4",
        "groupKey": '{}/{severity="page"}:{alertname="ErrorBudgetBurn1h5m"}',
        "truncatedAlerts": 0,
        "status": overall,
        "receiver": "controlplane",
        "groupLabels": {"alertname": chosen[0]["labels"]["alertname"]},
        "commonLabels": {"service": "inventory"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": chosen,
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
