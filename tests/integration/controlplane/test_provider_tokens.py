"""The control-plane API (a real process) against the real Keycloak: its access tokens open the
API next to API tokens, and an expired token, another realm's, one for another audience and a
tampered one each get 401 with the reason; a program (client credentials, service account in
slo-operators) acts as operator; a key rotation is followed; the control plane's client
credentials for the inventory API are fetched once and kept."""

from __future__ import annotations

import base64
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from controlplane.core.config import IdentitySettings
from controlplane.core.oidc import inventory_api_auth
from tests.integration.controlplane.processes import ControlPlaneProcess
from tests.support.keycloak import KeycloakServer

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def control_plane(keycloak: KeycloakServer) -> Iterator[ControlPlaneProcess]:
    with tempfile.TemporaryDirectory(prefix="cp-oidc-") as name:
        folder = Path(name)
        process = ControlPlaneProcess(
            settings={
                "database_url": f"sqlite:///{folder}/controlplane.db",
                "webhook_token": "oidc-webhook-token",
                "leader_election": "false",
                "oidc_issuer": keycloak.issuer,
                # Rotation test: a new key id may re-read the keys after one second.
                "oidc_jwks_min_refresh_seconds": "1",
            },
            log_path=folder / "controlplane.log",
        ).start()
        try:
            yield process
        finally:
            process.stop()


def call(control_plane: ControlPlaneProcess, token: str, path: str = "/me") -> httpx.Response:
    return httpx.get(
        f"{control_plane.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


@contextmanager
def header_recorder() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server standing for the inventory API: it records the bearer tokens it
    is sent (the inventory API's own checks are tested with the app)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(str(self.headers.get("Authorization", "")).removeprefix("Bearer "))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def claims(token: str) -> dict[str, object]:
    found: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return found


def test_people_get_the_role_of_their_group(
    keycloak: KeycloakServer, control_plane: ControlPlaneProcess
) -> None:
    for username, role, name in (
        ("vera", "viewer", "Vera Viewer"),
        ("oscar", "operator", "Oscar Operator"),
        ("ada", "admin", "Ada Admin"),
    ):
        token = keycloak.password_token(username)
        me = call(control_plane, token)
        assert me.status_code == 200, me.text
        assert me.json()["role"] == role
        assert (me.json()["username"], me.json()["full_name"]) == (username, name)
        assert me.json()["subject"] == claims(token)["sub"]


def test_a_program_with_client_credentials_acts_as_operator(
    keycloak: KeycloakServer, control_plane: ControlPlaneProcess
) -> None:
    token = keycloak.client_token("controlplane-automation")
    me = call(control_plane, token)
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "operator"
    flip = httpx.put(
        f"{control_plane.url}/api/v1/actions/kill-switch",
        json={"enabled": False, "reason": "automation check"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert flip.status_code == 200, flip.text


def test_a_token_without_a_mapped_group_is_403_and_then_401_once_expired(
    keycloak: KeycloakServer, control_plane: ControlPlaneProcess
) -> None:
    token = keycloak.client_token("short-lived")
    fresh = call(control_plane, token)
    assert fresh.status_code == 403
    assert "no role" in fresh.json()["detail"]
    time.sleep(max(0.0, float(str(claims(token)["exp"])) - time.time()) + 1.5)
    expired = call(control_plane, token)
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]


def test_another_realms_token_is_401(
    keycloak: KeycloakServer, control_plane: ControlPlaneProcess
) -> None:
    token = keycloak.client_token("controlplane-automation", realm="other")
    answer = call(control_plane, token)
    assert answer.status_code == 401
    assert "issued by" in answer.json()["detail"]
    assert keycloak.other_issuer in answer.json()["detail"]


def test_a_token_for_another_audience_is_401(
    keycloak: KeycloakServer, control_plane: ControlPlaneProcess
) -> None:
    token = keycloak.client_token("inventory-reader")
    assert "controlplane-api" not in str(claims(token)["aud"])
    answer = call(control_plane, token)
    assert answer.status_code == 401
    assert "does not include 'controlplane-api'" in answer.json()["detail"]


def test_a_tampered_token_is_401(
    keycloak: KeycloakServer, control_plane: ControlPlaneProcess
) -> None:
    header, payload, signature = keycloak.password_token("vera").split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["groups"] = ["slo-admins"]
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    answer = call(control_plane, f"{header}.{forged}.{signature}")
    assert answer.status_code == 401
    assert "signature does not verify" in answer.json()["detail"]


def test_tokens_signed_with_a_rotated_key_are_accepted(
    keycloak: KeycloakServer, control_plane: ControlPlaneProcess
) -> None:
    assert call(control_plane, keycloak.password_token("oscar")).status_code == 200
    kid = keycloak.rotate_keys()
    time.sleep(1.2)  # the refresh interval of this control plane
    token = keycloak.password_token("oscar")
    assert jwt.get_unverified_header(token)["kid"] == kid
    answer = call(control_plane, token)
    assert answer.status_code == 200, answer.text


def test_the_inventory_client_credentials_are_fetched_once_and_kept(
    keycloak: KeycloakServer, tmp_path: Path
) -> None:
    secret = tmp_path / "probe.secret"
    secret.write_text(keycloak.client_secret("controlplane-probe"), encoding="utf-8")
    auth = inventory_api_auth(
        IdentitySettings(oidc_issuer=keycloak.issuer, inventory_client_secret_file=secret)
    )
    assert auth is not None
    with header_recorder() as (url, seen), httpx.Client(auth=auth, timeout=10) as inventory:
        for _ in range(3):
            assert inventory.get(f"{url}/api/v1/items").status_code == 200
    assert auth.issued == 1
    assert len(set(seen)) == 1
    token = claims(seen[0])
    assert "inventory-api" in str(token["aud"])
    assert token["azp"] == "controlplane-probe"
    assert {"inventory:read", "inventory:write"} <= set(str(token["scope"]).split())
