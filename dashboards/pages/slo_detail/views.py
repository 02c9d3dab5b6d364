"""SLO detail components from data (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from dash import html

from controlplane.client.models import Alert, AuditEntry, SLOStatus, SLOTraces, TraceLogs
from dashboards.status import (
    AlertWindow,
    alert_label,
    alert_windows,
    classify,
    exhaustion_forecast,
    max_burn_rate,
    period_of,
)
from dashboards.ui import (
    DASH,
    budget_bar,
    duration_text,
    empty_state,
    evidence_details,
    no_data_state,
    percent,
    status_badge,
    table,
    utc,
)

__all__ = [
    "RANGE_SPANS",
    "actions_for",
    "alerts_for",
    "current_exhaustion",
    "events_table",
    "exhaustion_text",
    "firing_text",
    "header",
    "logs_view",
    "traces_view",
]

RANGE_SPANS = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def alerts_for(alerts: Sequence[Alert], *, slo_id: str, start: datetime) -> list[Alert]:
    """The alerts of this SLO (label ``slo``) that were open at some point after ``start``."""
    return [
        alert
        for alert in alerts
        if alert.labels.get("slo") == slo_id
        and (alert.status == "firing" or (alert.closed_at or alert.ends_at or start) >= start)
    ]


def actions_for(entries: Sequence[AuditEntry], *, slo_id: str, service: str) -> list[AuditEntry]:
    """Decisions about this SLO (``evidence.slo`` / ``evidence.slos``) or its service (the
    target, or ``evidence.service``)."""

    def related(entry: AuditEntry) -> bool:
        evidence = entry.evidence
        slos = evidence.get("slos")
        return (
            evidence.get("slo") == slo_id
            or (isinstance(slos, list) and slo_id in slos)
            or evidence.get("service") == service
            or entry.target == service
            or entry.target.endswith(f"/{service}")
        )

    return [entry for entry in entries if related(entry)]


def current_exhaustion(status: SLOStatus, *, now: datetime) -> datetime | None:
    """The exhaustion forecast: the evaluation's own (``details.time_to_exhaustion_s``; null
    there means not burning or no data) when it carries one, else (an evaluation without that
    field) from the 1 h burn rate (or the highest known) and the budget left."""
    if "time_to_exhaustion_s" in status.details.model_fields_set:
        seconds = status.details.time_to_exhaustion_s
        if seconds is not None and math.isfinite(seconds):
            return now + timedelta(seconds=float(seconds))
        return None
    burn = status.burn_rates.get("1h")
    if burn is None:
        burn = max_burn_rate(status)
    return exhaustion_forecast(
        budget_remaining=status.budget_remaining,
        burn_rate=burn,
        period=period_of(status.details),
        now=now,
    )


def exhaustion_text(exhaustion: datetime | None, *, now: datetime) -> str:
    """``in 18 h · 2026-11-22 06:00 UTC``, ``exhausted`` or ``not burning``."""
    if exhaustion is None:
        return "not burning"
    if exhaustion <= now:
        return "exhausted"
    in_time = duration_text((exhaustion - now).total_seconds())
    return f"in {in_time} · {utc(exhaustion, seconds=False)}"


def firing_text(windows: Sequence[AlertWindow]) -> str:
    """The firing burn-rate alerts, most acute first: ``page 14.4× (1h & 5m)``, or ``none``."""
    firing = sorted((w for w in windows if w.firing), key=lambda w: (w.long, w.short))
    return ", ".join(alert_label(window) for window in firing) or "none"


def header(status: SLOStatus, *, now: datetime) -> html.Div:
    kind = classify(status)
    exhaustion = current_exhaustion(status, now=now)
    period = status.details.period
    threshold = status.details.latency_threshold_s
    facts: list[tuple[str, Any]] = [
        ("Status", status_badge(kind)),
        ("Service", status.service),
        ("Tier", status.tier or DASH),
        ("Period", period if isinstance(period, str) else DASH),
        ("SLI", percent(status.sli)),
        ("Objective", percent(status.objective)),
        ("Budget remaining", budget_bar(status.budget_remaining)),
        ("Exhaustion forecast", exhaustion_text(exhaustion, now=now)),
        ("Firing alerts", firing_text(alert_windows(status))),
        ("Evaluated", utc(status.evaluated_at) + (" (stale)" if status.stale else "")),
    ]
    if isinstance(threshold, int | float):
        facts.insert(5, ("Latency threshold", duration_text(float(threshold))))
    children: list[Any] = [
        html.Dl([part for name, value in facts for part in (html.Dt(name), html.Dd(value))])
    ]
    if kind == "no_data":
        children.append(no_data_state(status.no_data_reason or f"state {status.state}"))
    return html.Div(children, className="detail-header")


def events_table(alerts: Sequence[Alert], actions: Sequence[AuditEntry]) -> html.Div:
    if not alerts and not actions:
        return empty_state("no alerts and no actions for this SLO in the range")
    rows: list[tuple[datetime, list[Any]]] = []
    for alert in alerts:
        rows.append(
            (
                alert.starts_at,
                [
                    utc(alert.starts_at),
                    "alert",
                    f"{alert.alertname} ({alert.severity or 'no severity'})",
                    alert.status + (f", closed {utc(alert.closed_at)}" if alert.closed_at else ""),
                    alert.annotations.get("summary", ""),
                ],
            )
        )
    for entry in actions:
        outcome = entry.outcome or "no outcome yet"
        rows.append(
            (
                entry.at,
                [
                    utc(entry.at),
                    "action",
                    f"{entry.action} {entry.target}",
                    f"{entry.decision}{' (dry run)' if entry.dry_run else ''}, {outcome}",
                    html.Div([entry.reason, evidence_details(entry.evidence)]),
                ],
            )
        )
    rows.sort(key=lambda row: row[0], reverse=True)
    return html.Div(
        table(header=["Time", "Kind", "What", "State", "Detail"], rows=[row for _, row in rows])
    )


def traces_view(found: SLOTraces, *, button_type: str) -> html.Div:
    """The traces as rows (id linking to the Jaeger UI, duration, root operation, ...) with a
    "logs" button each; an explicit state when Jaeger had nothing."""
    if found.no_data is not None:
        return no_data_state(
            f"{found.no_data.source} {found.no_data.reason}: {found.no_data.detail}"
        )
    if not found.traces:
        bound = f" of at least {found.min_duration_ms:g} ms" if found.min_duration_ms else ""
        return empty_state(
            f"no {found.kind} traces{bound} of {found.service} between {utc(found.start)} "
            f"and {utc(found.end)}"
        )
    rows = [
        [
            html.A(row.trace_id, href=row.ui_url, target="_blank", className="trace-link"),
            f"{row.duration_ms:.1f} ms",
            row.operation,
            utc(row.start),
            str(row.span_count),
            "error" if row.error else "",
            html.Button(
                "logs",
                id={"type": button_type, "kind": found.kind, "trace": row.trace_id},
                n_clicks=0,
                className="small",
            ),
        ]
        for row in found.traces
    ]
    caption = f"at least {found.min_duration_ms:g} ms" if found.min_duration_ms else "any duration"
    return html.Div(
        [
            html.Div(caption, className="muted") if found.kind == "slow" else None,
            table(
                header=["Trace", "Duration", "Root operation", "Started", "Spans", "", ""],
                rows=rows,
                row_attributes=[
                    {"data-trace": row.trace_id, "data-kind": found.kind} for row in found.traces
                ],
                class_name="grid trace-table",
            ),
        ]
    )


def logs_view(found: TraceLogs) -> html.Div:
    if found.no_data is not None:
        return no_data_state(
            f"{found.no_data.source} {found.no_data.reason}: {found.no_data.detail}"
        )
    if not found.lines:
        return empty_state(f"no log line carries trace.id {found.trace_id}")
    rows = [
        [utc(line.at), line.level or DASH, line.service or DASH, line.message]
        for line in found.lines
    ]
    return html.Div(
        [
            html.Div(f"{len(rows)} log lines of trace {found.trace_id}", className="muted"),
            table(
                header=["Time", "Level", "Service", "Message"],
                rows=rows,
                class_name="grid log-table",
            ),
        ]
    )
