"""SLO detail callbacks: the charts (status, history, alerts, audit), the example traces, and
the log lines of the trace whose "logs" button was clicked."""

from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, Output, ctx, dcc, html, no_update

from controlplane.client.http import ClientError, ControlPlaneClient
from dashboards.pages.slo_detail.figures import (
    budget_figure,
    burn_rate_figure,
    events_figure,
    sli_figure,
)
from dashboards.pages.slo_detail.layout import RANGES, DetailIds
from dashboards.pages.slo_detail.views import (
    RANGE_SPANS,
    actions_for,
    alerts_for,
    current_exhaustion,
    events_table,
    header,
    logs_view,
    traces_view,
)
from dashboards.status import alert_windows, burning_window, period_of
from dashboards.ui import GRAPH_CONFIG, empty_state, error_state, now_utc
from slo.durations import format_duration

__all__ = ["HISTORY_LIMIT", "register"]

#: The most evaluations one chart asks for (the API's maximum).
HISTORY_LIMIT = 10_000


def _graph(figure: Any, *, name: str) -> dcc.Graph:
    return dcc.Graph(figure=figure, config=GRAPH_CONFIG, id=f"detail-graph-{name}")


def register(app: Dash, *, client: ControlPlaneClient) -> None:
    @app.callback(
        Output(DetailIds.HEADER, "children"),
        Output(DetailIds.NOTE, "children"),
        Output(DetailIds.SLI, "children"),
        Output(DetailIds.BUDGET, "children"),
        Output(DetailIds.BURN, "children"),
        Output(DetailIds.EVENTS, "children"),
        Output(DetailIds.EVENTS_TABLE, "children"),
        Input(DetailIds.SLO_ID, "data"),
        Input(DetailIds.RANGE, "value"),
    )
    def charts(slo_id: str, range_value: str | None) -> tuple[Any, ...]:
        now = now_utc()
        span = RANGE_SPANS.get(range_value or RANGES[0], RANGE_SPANS[RANGES[0]])
        start = now - span
        try:
            status = client.slo(slo_id)
            history = client.slo_history(slo_id, since=start, until=now, limit=HISTORY_LIMIT)
            alerts = alerts_for(client.alerts(limit=1000), slo_id=slo_id, start=start)
            actions = actions_for(
                client.audit(since=start, limit=1000), slo_id=slo_id, service=status.service
            )
        except ClientError as exc:
            return error_state(exc), "", None, None, None, None, None
        oldest_first = sorted(history, key=lambda item: item.at)
        times = [item.at for item in oldest_first]
        note = f"{len(history)} evaluations"
        if len(history) >= HISTORY_LIMIT and oldest_first:
            note += f" (the newest {HISTORY_LIMIT}: from {oldest_first[0].at:%Y-%m-%d %H:%M} UTC)"
        if not history:
            empty = empty_state(f"no data: no evaluation of {slo_id} in the last {range_value}")
            sli_part: Any = empty
            budget_part: Any = empty
        else:
            sli_part = _graph(
                sli_figure(
                    times=times,
                    sli=[item.sli for item in oldest_first],
                    objective=status.objective,
                    start=start,
                    end=now,
                ),
                name="sli",
            )
            budget_part = _graph(
                budget_figure(
                    times=times,
                    budget=[item.budget_remaining for item in oldest_first],
                    now=now,
                    exhaustion=current_exhaustion(status, now=now),
                    start=start,
                    end=now,
                ),
                name="budget",
            )
        burn_part = _graph(
            burn_rate_figure(
                burn_rates=status.burn_rates,
                windows=alert_windows(status),
                period=format_duration(period_of(status.details)),
            ),
            name="burn",
        )
        events_part = _graph(
            events_figure(alerts=alerts, actions=actions, start=start, end=now), name="events"
        )
        return (
            header(status, now=now),
            note,
            sli_part,
            budget_part,
            burn_part,
            events_part,
            events_table(alerts, actions),
        )

    @app.callback(
        Output(DetailIds.TRACE_WINDOW, "children"),
        Output(DetailIds.SLOW_TRACES, "children"),
        Output(DetailIds.ERROR_TRACES, "children"),
        Input(DetailIds.SLO_ID, "data"),
    )
    def traces(slo_id: str) -> tuple[Any, Any, Any]:
        now = now_utc()
        try:
            status = client.slo(slo_id)
        except ClientError as exc:
            return "", error_state(exc), None
        start, end, label = burning_window(status, now=now)
        caption = f"{label}: {start:%Y-%m-%d %H:%M} – {end:%H:%M} UTC, service {status.service}"
        parts: list[Any] = []
        for kind in ("slow", "error"):
            try:
                found = client.slo_traces(slo_id, kind=kind, start=start, end=end)
            except ClientError as exc:
                parts.append(error_state(exc))
            else:
                parts.append(traces_view(found, button_type=DetailIds.LOGS_BUTTON))
        return caption, parts[0], parts[1]

    @app.callback(
        Output(DetailIds.LOGS, "children"),
        Input({"type": DetailIds.LOGS_BUTTON, "kind": ALL, "trace": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def logs(clicks: list[int | None]) -> Any:
        chosen = ctx.triggered_id
        if not isinstance(chosen, dict) or not any(clicks):
            return no_update
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            return no_update  # buttons (re)drawn, none clicked
        trace_id = str(chosen["trace"])
        try:
            found = client.trace_logs(trace_id)
        except ClientError as exc:
            return error_state(exc)
        attributes: dict[str, Any] = {"data-trace": trace_id}
        return html.Div([logs_view(found)], **attributes)
