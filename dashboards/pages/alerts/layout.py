"""Alerts & actions: the kill switch and pending approvals (for a signed-in operator only; hidden
otherwise), live alerts from the webhook store, and the audit log with each decision's evidence."""

from __future__ import annotations

from dash import dcc, html

from dashboards.ui import loading

__all__ = ["AlertsIds", "layout"]


class AlertsIds:
    REFRESH = "alerts-refresh"
    KILL_STATE = "alerts-kill-state"
    KILL_CURRENT = "alerts-kill-current"
    KILL_REASON = "alerts-kill-reason"
    KILL_TOGGLE = "alerts-kill-toggle"
    KILL_CONTROLS = "alerts-kill-controls"
    VERDICT_CONTROLS = "alerts-verdict-controls"
    KILL_MESSAGE = "alerts-kill-message"
    KILL_DONE = "alerts-kill-done"
    ROLE_NOTE = "alerts-role-note"
    PENDING = "alerts-pending"
    VERDICT = "alerts-verdict"
    VERDICT_COMMENT = "alerts-verdict-comment"
    VERDICT_MESSAGE = "alerts-verdict-message"
    VERDICT_DONE = "alerts-verdict-done"
    LIVE = "alerts-live"
    DECISIONS = "alerts-decisions"
    AUDIT = "alerts-audit"
    LOADING = "alerts-loading"


def layout(*, refresh_seconds: float = 15.0) -> html.Div:
    return html.Div(
        [
            html.H2("Alerts & actions"),
            html.Section(
                [
                    html.H3("Kill switch"),
                    html.Div(
                        html.Div("Loading…", className="state state-loading"),
                        id=AlertsIds.KILL_STATE,
                    ),
                    html.Div(
                        [
                            dcc.Input(
                                id=AlertsIds.KILL_REASON,
                                placeholder="reason (kept in the audit trail)",
                                debounce=False,
                                className="reason",
                            ),
                            html.Button(
                                "Kill switch",
                                id=AlertsIds.KILL_TOGGLE,
                                n_clicks=0,
                                disabled=True,
                                className="danger",
                            ),
                        ],
                        className="toolbar",
                        id=AlertsIds.KILL_CONTROLS,
                        hidden=True,
                    ),
                    html.Div(id=AlertsIds.ROLE_NOTE, className="muted"),
                    html.Div(id=AlertsIds.KILL_MESSAGE),
                    dcc.Store(id=AlertsIds.KILL_CURRENT),
                    dcc.Store(id=AlertsIds.KILL_DONE, data=0),
                ],
                className="panel",
            ),
            html.Section(
                [
                    html.H3("Pending actions"),
                    html.Div(
                        dcc.Input(
                            id=AlertsIds.VERDICT_COMMENT,
                            placeholder="comment for approve / deny",
                            className="reason",
                        ),
                        id=AlertsIds.VERDICT_CONTROLS,
                        hidden=True,
                    ),
                    html.Div(id=AlertsIds.PENDING),
                    html.Div(id=AlertsIds.VERDICT_MESSAGE),
                    dcc.Store(id=AlertsIds.VERDICT_DONE, data=0),
                ],
                className="panel",
            ),
            loading(
                html.Div(
                    [
                        html.H3("Live alerts"),
                        html.Div(
                            html.Div("Loading alerts…", className="state state-loading"),
                            id=AlertsIds.LIVE,
                        ),
                        html.H3("Audit log"),
                        html.Div(id=AlertsIds.DECISIONS, className="chart"),
                        html.Div(id=AlertsIds.AUDIT),
                    ]
                ),
                id=AlertsIds.LOADING,
            ),
            dcc.Interval(id=AlertsIds.REFRESH, interval=int(refresh_seconds * 1000)),
        ],
        className="page page-alerts",
    )
