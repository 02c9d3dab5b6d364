"""The console's composition root: ``create_app(client=, settings=)`` builds the Dash app.

Pages are plain functions of the URL (``/``, ``/slo/<id>``, ``/capacity``, ``/dr``,
``/alerts``); every page registers its callbacks with the one injected client. Nothing is read
from the control plane until a page asks for it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

from dash import Dash, Input, Output, dcc, html
from dash.development.base_component import Component

from dashboards.client import ControlPlaneClient, ControlPlaneError
from dashboards.config import DashboardSettings
from dashboards.history import RecentHistory
from dashboards.pages.alerts import callbacks as alerts_callbacks
from dashboards.pages.alerts import layout as alerts_layout
from dashboards.pages.capacity import callbacks as capacity_callbacks
from dashboards.pages.capacity import layout as capacity_layout
from dashboards.pages.dr import callbacks as dr_callbacks
from dashboards.pages.dr import layout as dr_layout
from dashboards.pages.overview import callbacks as overview_callbacks
from dashboards.pages.overview import layout as overview_layout
from dashboards.pages.slo_detail import callbacks as detail_callbacks
from dashboards.pages.slo_detail import layout as detail_layout
from dashboards.ui import describe_error, empty_state

__all__ = ["PAGES", "ShellIds", "create_app", "page_for"]

ASSETS = Path(__file__).parent / "assets"
DETAIL_PREFIX = "/slo/"
#: (path, navigation label)
PAGES: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/capacity", "Capacity"),
    ("/dr", "DR"),
    ("/alerts", "Alerts & actions"),
)


class ShellIds:
    LOCATION = "shell-location"
    PAGE = "shell-page"
    WHO = "shell-who"


def shell() -> html.Div:
    return html.Div(
        [
            dcc.Location(id=ShellIds.LOCATION),
            html.Header(
                [
                    html.H1("Inventory SLO console"),
                    html.Nav(
                        [dcc.Link(label, href=path, className="nav-link") for path, label in PAGES]
                    ),
                    html.Span("all times UTC", className="muted zone"),
                    html.Span(id=ShellIds.WHO, className="who"),
                ],
                className="shell-header",
            ),
            html.Main(id=ShellIds.PAGE),
        ],
        className="shell",
    )


def page_for(pathname: str | None, *, refresh_seconds: float) -> Component:
    path = pathname or "/"
    if path == "/":
        return overview_layout.layout(refresh_seconds=refresh_seconds)
    if path.startswith(DETAIL_PREFIX) and len(path) > len(DETAIL_PREFIX):
        return detail_layout.layout(slo_id=unquote(path[len(DETAIL_PREFIX) :]))
    if path == "/capacity":
        return capacity_layout.layout()
    if path == "/dr":
        return dr_layout.layout()
    if path == "/alerts":
        return alerts_layout.layout(refresh_seconds=refresh_seconds)
    return empty_state(f"no page at {path}")


def create_app(*, client: ControlPlaneClient, settings: DashboardSettings) -> Dash:
    app = Dash(
        __name__,
        title="Inventory SLO console",
        update_title="",
        use_pages=False,
        assets_folder=str(ASSETS),
        serve_locally=True,
    )
    refresh = settings.refresh_interval_seconds
    app.layout = shell()
    app.validation_layout = html.Div(  # type: ignore[assignment]
        [
            shell(),
            overview_layout.layout(refresh_seconds=refresh),
            detail_layout.layout(slo_id=""),
            capacity_layout.layout(),
            dr_layout.layout(),
            alerts_layout.layout(refresh_seconds=refresh),
        ]
    )

    @app.callback(Output(ShellIds.PAGE, "children"), Input(ShellIds.LOCATION, "pathname"))
    def route(pathname: str | None) -> Component:
        return page_for(pathname, refresh_seconds=refresh)

    @app.callback(Output(ShellIds.WHO, "children"), Input(ShellIds.LOCATION, "pathname"))
    def who(_pathname: str | None) -> str | html.Span:
        try:
            me = client.me()
        except ControlPlaneError as exc:
            return html.Span(describe_error(exc), className="who-error")
        return f"token {me.name} · {me.role.value}"

    history = RecentHistory(
        client=client,
        window=timedelta(seconds=settings.sparkline_window_seconds),
        points=settings.sparkline_points,
        workers=settings.history_workers,
        cache=settings.history_cache,
        batch=settings.history_batch,
    )
    overview_callbacks.register(app, client=client, history=history)
    detail_callbacks.register(app, client=client)
    capacity_callbacks.register(app, client=client)
    dr_callbacks.register(app, client=client)
    alerts_callbacks.register(app, client=client)
    return app
