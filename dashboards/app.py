"""The console's composition root: ``create_app(client=, settings=)`` builds the Dash app.

Pages are plain functions of the URL (``/``, ``/slo/<id>``, ``/capacity``, ``/dr``,
``/alerts``); every page registers its callbacks with the one injected client. Nothing is read
from the control plane until a page asks for it.

The first page a browser opens comes with the layout itself (the page's address is the
``Referer`` of the layout request), so its callbacks start one round trip earlier; the routing
callback then leaves it in place. Without a ``Referer`` the routing callback draws it as it
draws every later page.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import flask
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.development.base_component import Component

from controlplane.client.http import ClientError, ControlPlaneClient
from dashboards.auth import ConsoleAuth
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
    #: The path whose page the layout already holds (until the routing callback has seen it).
    RENDERED = "shell-rendered-path"


def shell(*, path: str | None = None, page: Component | None = None) -> html.Div:
    """The frame of every page; ``page`` (the page at ``path``) when the layout brings it."""
    return html.Div(
        [
            dcc.Location(id=ShellIds.LOCATION),
            dcc.Store(id=ShellIds.RENDERED, data=path),
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
            html.Main(page, id=ShellIds.PAGE),
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


def _page_path(referrer: str | None) -> str | None:
    """The path of the page that asked for the layout, from its ``Referer``; None when there
    is none (the routing callback draws the page then)."""
    if not referrer:
        return None
    return urlsplit(referrer).path or "/"


def who_view(
    *, auth: ConsoleAuth | None, client: ControlPlaneClient, path: str | None
) -> list[Any] | str | html.Span:
    """The header's right end: the signed-in person and sign-out, else the service token and
    (with a provider) a sign-in link."""
    person = auth.person() if auth is not None else None
    if auth is not None and person is not None:
        role = person.role.value if person.role is not None else "no role"
        as_role: dict[str, Any] = {"data-role": role}
        shown = f"{person.label} ({person.username or person.subject}) · {role}"
        if person.needs_second_factor and person.group_role is not None:
            shown += (
                f" ({person.group_role.value} needs a sign-in with a one-time code: "
                "sign out and in again)"
            )
        return [
            html.Span(shown, className="who-person", **as_role),
            html.Form(
                html.Button("Sign out", type="submit", id="shell-sign-out", className="small"),
                action="/auth/logout",
                method="POST",
                className="sign-out",
            ),
        ]
    read_only: dict[str, Any] = {"data-role": "read-only"}
    try:
        me = client.me()
        service = html.Span(f"read-only · token {me.name}", className="who-service", **read_only)
    except ClientError as exc:
        service = html.Span(describe_error(exc), className="who-error")
    if auth is None:
        return service
    return [
        service,
        html.A(
            "Sign in",
            href="/auth/login?" + urlencode({"next": path or "/"}),
            id="shell-sign-in",
            className="sign-in",
        ),
    ]


def create_app(
    *,
    client: ControlPlaneClient,
    settings: DashboardSettings,
    auth: ConsoleAuth | None = None,
    session_secret: str | None = None,
) -> Dash:
    """The console; with ``auth`` (and the secret that signs its session cookie) people sign
    in and act as themselves, without it the console only reads."""
    app = Dash(
        __name__,
        title="Inventory SLO console",
        update_title="",
        use_pages=False,
        assets_folder=str(ASSETS),
        serve_locally=True,
    )
    refresh = settings.refresh_interval_seconds
    if auth is not None:
        if not session_secret:
            raise ValueError("sign-in needs the session secret that signs the cookie")
        auth.install(
            app.server, secret=session_secret, secure_cookie=settings.session_cookie_secure
        )

    def initial_layout() -> html.Div:
        # Dash also calls this once at start, outside any request: the bare shell then.
        referrer = flask.request.referrer if flask.has_request_context() else None
        path = _page_path(referrer)
        if path is None:
            return shell()
        return shell(path=path, page=page_for(path, refresh_seconds=refresh))

    app.layout = initial_layout
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

    @app.callback(
        Output(ShellIds.PAGE, "children"),
        Output(ShellIds.RENDERED, "data"),
        Input(ShellIds.LOCATION, "pathname"),
        State(ShellIds.RENDERED, "data"),
    )
    def route(pathname: str | None, rendered: str | None) -> tuple[Any, None]:
        if rendered is not None and (pathname or "/") == rendered:
            return no_update, None  # the layout brought this page; later visits draw it
        return page_for(pathname, refresh_seconds=refresh), None

    @app.callback(Output(ShellIds.WHO, "children"), Input(ShellIds.LOCATION, "pathname"))
    def who(pathname: str | None) -> list[Any] | str | html.Span:
        return who_view(auth=auth, client=client, path=pathname)

    history = RecentHistory(
        client=client,
        window=timedelta(seconds=settings.sparkline_window_seconds),
        points=settings.sparkline_points,
        workers=settings.history_workers,
        cache=settings.history_cache,
        batch=settings.history_batch,
    )
    overview_callbacks.register(
        app, client=client, history=history, page_size=settings.overview_page_size
    )
    detail_callbacks.register(app, client=client)
    capacity_callbacks.register(app, client=client)
    dr_callbacks.register(app, client=client)
    alerts_callbacks.register(app, client=client, auth=auth)
    return app
