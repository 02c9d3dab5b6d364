"""Alerts & actions callbacks: one load (interval or after an action) and the two operator
actions (kill switch, approve / deny). The controls are shown only to a signed-in person with the
operator role, and the actions are sent with that person's access token: the control plane
checks the role again (a viewer's request gets 403) and its audit log names the person. The
console's own token only reads; without sign-in configured the console is read-only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, dcc, no_update

from controlplane.client.http import ClientError, ControlPlaneClient
from controlplane.client.models import ActionState
from dashboards.auth import ConsoleAuth, Person
from dashboards.pages.alerts.figures import decisions_figure
from dashboards.pages.alerts.layout import AlertsIds
from dashboards.pages.alerts.views import (
    alerts_table,
    audit_table,
    kill_state_view,
    pending_table,
    toggle_label,
)
from dashboards.ui import GRAPH_CONFIG, empty_state, error_state, now_utc, utc

__all__ = ["AUDIT_SPAN", "register"]

AUDIT_SPAN = timedelta(days=1)


def role_note(auth: ConsoleAuth | None, person: Person | None) -> str:
    if auth is None:
        return (
            "read-only console: no sign-in is configured; the kill switch and approvals need "
            "a signed-in operator"
        )
    if person is None:
        return "sign in as an operator to use the kill switch and approvals"
    if not person.is_operator:
        role = person.role.value if person.role is not None else "no role"
        return f"{person.label} is {role}: the kill switch and approvals need the operator role"
    return (
        f"signed in as {person.label} (operator): the kill switch and approvals are recorded "
        "under your name"
    )


def register(app: Dash, *, client: ControlPlaneClient, auth: ConsoleAuth | None = None) -> None:
    def acting() -> Person | None:
        return auth.person() if auth is not None else None

    @app.callback(
        Output(AlertsIds.KILL_STATE, "children"),
        Output(AlertsIds.KILL_CURRENT, "data"),
        Output(AlertsIds.KILL_TOGGLE, "children"),
        Output(AlertsIds.KILL_TOGGLE, "disabled"),
        Output(AlertsIds.KILL_CONTROLS, "hidden"),
        Output(AlertsIds.VERDICT_CONTROLS, "hidden"),
        Output(AlertsIds.ROLE_NOTE, "children"),
        Output(AlertsIds.PENDING, "children"),
        Output(AlertsIds.LIVE, "children"),
        Output(AlertsIds.DECISIONS, "children"),
        Output(AlertsIds.AUDIT, "children"),
        Input(AlertsIds.REFRESH, "n_intervals"),
        Input(AlertsIds.KILL_DONE, "data"),
        Input(AlertsIds.VERDICT_DONE, "data"),
    )
    def load(_ticks: int | None, _kill: int, _verdict: int) -> tuple[Any, ...]:
        now = now_utc()
        try:
            client.me()
        except ClientError as exc:
            failed = error_state(exc)
            return failed, None, "Kill switch", True, True, True, "", None, None, None, None
        person = acting()
        can_act = person is not None and person.is_operator
        note = role_note(auth, person)
        state: ActionState | None
        try:
            state = client.action_state()
            kill: Any = kill_state_view(state)
        except ClientError as exc:
            state, kill = None, error_state(exc)
        try:
            pending: Any = pending_table(
                client.pending_actions(), can_act=can_act, button_type=AlertsIds.VERDICT
            )
        except ClientError as exc:
            pending = error_state(exc)
        try:
            live: Any = alerts_table(client.alerts(status="firing", limit=500))
        except ClientError as exc:
            live = error_state(exc)
        try:
            entries = client.audit(since=now - AUDIT_SPAN, limit=500)
            decisions: Any = dcc.Graph(
                figure=decisions_figure(entries, start=now - AUDIT_SPAN, end=now),
                config=GRAPH_CONFIG,
            )
            audit: Any = audit_table(entries)
        except ClientError as exc:
            decisions, audit = None, error_state(exc)
        return (
            kill,
            None if state is None else state.kill_switch,
            toggle_label(state),
            not can_act or state is None,
            not can_act,
            not can_act,
            note,
            pending,
            live,
            decisions,
            audit,
        )

    @app.callback(
        Output(AlertsIds.KILL_MESSAGE, "children"),
        Output(AlertsIds.KILL_DONE, "data"),
        Input(AlertsIds.KILL_TOGGLE, "n_clicks"),
        State(AlertsIds.KILL_CURRENT, "data"),
        State(AlertsIds.KILL_REASON, "value"),
        State(AlertsIds.KILL_DONE, "data"),
        prevent_initial_call=True,
    )
    def toggle(
        clicks: int | None, current: bool | None, reason: str | None, done: int | None
    ) -> tuple[Any, Any]:
        if not clicks or current is None:
            return no_update, no_update
        person = acting()
        if person is None:
            return empty_state("sign in as an operator first"), (done or 0) + 1
        as_person = auth.person_client(person) if auth is not None else client
        try:
            state = as_person.set_kill_switch(
                enabled=not current, reason=reason or "from the operator console"
            )
        except ClientError as exc:
            return error_state(exc), (done or 0) + 1
        finally:
            as_person.close()
        word = "on: actions stopped" if state.kill_switch else "off: actions allowed"
        return f"kill switch {word} at {utc(state.changed_at)}", (done or 0) + 1

    @app.callback(
        Output(AlertsIds.VERDICT_MESSAGE, "children"),
        Output(AlertsIds.VERDICT_DONE, "data"),
        Input({"type": AlertsIds.VERDICT, "verdict": ALL, "decision": ALL}, "n_clicks"),
        State(AlertsIds.VERDICT_COMMENT, "value"),
        State(AlertsIds.VERDICT_DONE, "data"),
        prevent_initial_call=True,
    )
    def verdict(clicks: list[int | None], comment: str | None, done: int | None) -> tuple[Any, Any]:
        chosen = ctx.triggered_id
        if not isinstance(chosen, dict) or not any(clicks):
            return no_update, no_update
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            return no_update, no_update
        decision_id = str(chosen["decision"])
        person = acting()
        if person is None:
            return empty_state("sign in as an operator first"), (done or 0) + 1
        as_person = auth.person_client(person) if auth is not None else client
        try:
            if chosen["verdict"] == "approve":
                entry = as_person.approve(decision_id, comment=comment or "")
            else:
                entry = as_person.deny(decision_id, comment=comment or "")
        except ClientError as exc:
            return error_state(exc), (done or 0) + 1
        finally:
            as_person.close()
        done_word = "approved" if chosen["verdict"] == "approve" else "denied"
        return f"{done_word} {entry.action} {entry.target} ({decision_id})", (done or 0) + 1
