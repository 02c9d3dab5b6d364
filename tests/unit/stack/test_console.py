"""The operator console in the local stack: after the control plane, on its own port, with
the control plane's URL and a viewer token made for it; people sign in through the stack's
Keycloak, which the control plane trusts too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from controlplane.core.security import Role
from controlplane.stack.console import CONSOLE_TITLE, Dashboards
from controlplane.stack.runner import CONSOLE_TOKEN_NAME, ORDER, ControlPlane, LocalStack
from controlplane.stack.settings import StackSettings
from controlplane.store.database import Database
from controlplane.store.tokens import authenticate

pytestmark = pytest.mark.unit


def test_the_console_starts_after_the_control_plane_and_reads_it(tmp_path: Path) -> None:
    assert ORDER.index(Dashboards.name) == ORDER.index(ControlPlane.name) + 1
    stack = LocalStack(settings=StackSettings(), home=tmp_path)
    console = stack.backends[Dashboards.name]
    control_plane = stack.backends[ControlPlane.name]
    assert isinstance(console, Dashboards)
    assert isinstance(control_plane, ControlPlane)
    command = console.command()
    assert command[1:3] == ["-m", "dashboards"]
    assert command[command.index("--control-plane") + 1] == control_plane.url
    assert command[command.index("--token-file") + 1] == str(control_plane.console_token_file)
    assert command[command.index("--port") + 1] == "8050"
    assert console.log_path == tmp_path / "logs" / "dashboards.log"


def test_the_console_and_the_control_plane_sign_in_through_the_stacks_keycloak(
    tmp_path: Path,
) -> None:
    stack = LocalStack(settings=StackSettings(), home=tmp_path)
    console = stack.backends[Dashboards.name]
    control_plane = stack.backends[ControlPlane.name]
    assert isinstance(console, Dashboards)
    issuer = "http://127.0.0.1:8180/realms/inventory"
    identity = tmp_path / "data" / "identity"
    env = control_plane.environment()
    assert env["CONTROLPLANE_OIDC_ISSUER"] == issuer
    assert env["CONTROLPLANE_INVENTORY_CLIENT_SECRET_FILE"] == str(
        identity / "controlplane-probe.secret"
    )
    allowed: list[str] = []
    assert console.sign_in is not None
    console.sign_in = replace(console.sign_in, allow_redirect=allowed.append)
    console.prepare()
    assert allowed == ["http://127.0.0.1:8050/"]  # Keycloak sends the browser back there
    secret = console.session_secret_file
    assert secret.stat().st_mode & 0o777 == 0o600
    assert len(secret.read_text(encoding="utf-8").strip()) >= 32
    console_env = console.environment()
    assert console_env["DASHBOARDS_OIDC_ISSUER"] == issuer
    assert console_env["DASHBOARDS_OIDC_CLIENT_SECRET_FILE"] == str(
        identity / "inventory-console.secret"
    )
    assert console_env["DASHBOARDS_SESSION_SECRET_FILE"] == str(secret)


def test_the_console_gets_a_viewer_token_that_survives_a_restart(tmp_path: Path) -> None:
    stack = LocalStack(settings=StackSettings(), home=tmp_path)
    control_plane = stack.backends[ControlPlane.name]
    assert isinstance(control_plane, ControlPlane)
    control_plane.prepare_secrets(on_event=lambda name, event: None)
    token = control_plane.console_token_file.read_text(encoding="utf-8").strip()
    assert control_plane.console_token_file.stat().st_mode & 0o777 == 0o600
    control_plane.prepare_secrets(on_event=lambda name, event: None)  # kept when still valid
    assert control_plane.console_token_file.read_text(encoding="utf-8").strip() == token
    database = Database.from_url(control_plane.database_url)
    try:
        with database.reader() as session:
            found = authenticate(session, secret=token)
    finally:
        database.dispose()
    assert found is not None
    assert (found.name, found.role) == (CONSOLE_TOKEN_NAME, Role.VIEWER)


class _Page(BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def page() -> Iterator[tuple[type[_Page], int]]:
    handler = type("Handler", (_Page,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_healthy_only_when_the_console_page_answers_200(
    tmp_path: Path, page: tuple[type[_Page], int]
) -> None:
    handler, port = page
    console = Dashboards(
        settings=StackSettings(),
        workdir=tmp_path,
        ports={"http": port},
        control_plane_url="http://127.0.0.1:8080",
        token_file=tmp_path / "token",
    )
    handler.body = f"<html><title>{CONSOLE_TITLE}</title></html>".encode()
    assert console.healthy()
    handler.body = b"<html><title>something else</title></html>"
    assert not console.healthy()
    handler.status, handler.body = 500, CONSOLE_TITLE.encode()
    assert not console.healthy()
