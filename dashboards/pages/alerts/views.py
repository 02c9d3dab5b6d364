"""Alerts & actions components from data (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dash import html

from controlplane.client.models import ActionState, Alert, AuditEntry, PendingAction
from dashboards.ui import DASH, empty_state, evidence_details, table, utc

__all__ = ["alerts_table", "audit_table", "kill_state_view", "pending_table", "toggle_label"]


def kill_state_view(state: ActionState) -> html.Div:
    if state.kill_switch:
        headline = html.Strong("KILL SWITCH ON: all actions are stopped", className="kill-on")
    else:
        headline = html.Strong("actions allowed (kill switch off)", className="kill-off")
    changed = (
        f"changed {utc(state.changed_at)} by {state.changed_by or DASH}"
        + (f": {state.reason}" if state.reason else "")
        if state.changed_at is not None
        else "never changed"
    )
    attributes: dict[str, Any] = {"data-kill-switch": "on" if state.kill_switch else "off"}
    return html.Div([headline, html.Div(changed, className="muted")], **attributes)


def toggle_label(state: ActionState | None) -> str:
    if state is None:
        return "Kill switch"
    return "Allow actions again" if state.kill_switch else "Stop all actions"


def pending_table(pending: Sequence[PendingAction], *, can_act: bool, button_type: str) -> html.Div:
    if not pending:
        return empty_state("no action is waiting for approval")
    rows = []
    for action in pending:
        buttons = [
            html.Button(
                label,
                id={"type": button_type, "verdict": verdict, "decision": action.decision_id},
                n_clicks=0,
                className=f"small {verdict}",
            )
            for verdict, label in (("approve", "Approve"), ("deny", "Deny"))
            if can_act
        ]
        rows.append(
            [
                utc(action.at),
                action.action,
                action.service,
                action.target,
                html.Div(
                    [
                        action.reason,
                        *people_view(action.evidence),
                        evidence_details(action.evidence),
                    ]
                ),
                html.Span(buttons),
            ]
        )
    return html.Div(
        table(
            header=["Decided", "Action", "Service", "Target", "Reason and evidence", ""],
            rows=rows,
            row_attributes=[{"data-decision": a.decision_id} for a in pending],
            class_name="grid pending-table",
        )
    )


def alerts_table(alerts: Sequence[Alert]) -> html.Div:
    if not alerts:
        return empty_state("no alert is firing")
    rows = [
        [
            alert.alertname,
            alert.severity or DASH,
            alert.labels.get("slo", DASH),
            alert.labels.get("service", DASH),
            utc(alert.starts_at),
            str(alert.repeat_count),
            alert.annotations.get("summary") or alert.annotations.get("description", ""),
        ]
        for alert in alerts
    ]
    return html.Div(
        table(
            header=["Alert", "Severity", "SLO", "Service", "Since", "Repeats", "Summary"],
            rows=rows,
            row_attributes=[{"data-alert": a.fingerprint} for a in alerts],
            class_name="grid alerts-table",
        )
    )


#: Evidence keys naming who asked for, approved or denied a decision, and how the console says it.
PEOPLE = (("requested_by", "asked by"), ("approved_by", "approved by"), ("denied_by", "denied by"))


def person_text(who: Mapping[str, Any]) -> str:
    """``Oscar Operator (oscar)`` for a person of the identity provider, ``token <name>`` for
    an API token."""
    if who.get("kind") == "oidc":
        name, username = who.get("name"), who.get("preferred_username")
        label = name or username or who.get("subject") or "?"
        return f"{label} ({username})" if name and username else str(label)
    return f"token {who.get('token', '?')}"


def people_view(evidence: Mapping[str, Any]) -> list[Any]:
    """One line per person named in a decision's evidence (subject as the line's title)."""
    lines: list[Any] = []
    for key, words in PEOPLE:
        who = evidence.get(key)
        if isinstance(who, Mapping):
            attributes: dict[str, Any] = {
                "data-person": str(who.get("preferred_username") or who.get("token"))
            }
            lines.append(
                html.Div(
                    f"{words} {person_text(who)}",
                    className="muted person",
                    title=f"subject {who.get('subject')}" if who.get("subject") else None,
                    **attributes,
                )
            )
    return lines


def audit_table(entries: Sequence[AuditEntry]) -> html.Div:
    if not entries:
        return empty_state("the audit log is empty")
    rows = [
        [
            utc(entry.at),
            html.Div([entry.actor, *people_view(entry.evidence)]),
            entry.action,
            entry.target,
            entry.decision + (" (dry run)" if entry.dry_run else ""),
            entry.outcome or "no outcome yet",
            entry.reason,
            evidence_details(entry.evidence, summary="evidence"),
        ]
        for entry in entries
    ]
    return html.Div(
        table(
            header=["Time", "Actor", "Action", "Target", "Decision", "Outcome", "Reason", ""],
            rows=rows,
            row_attributes=[{"data-decision": e.decision_id} for e in entries],
            class_name="grid audit-table",
        )
    )
