"""The session's Keycloak as tests use it: issuers, client secrets, tokens, key rotation.

One Keycloak serves the whole session (it takes tens of seconds to start): realm ``inventory``
(the one the product trusts) and realm ``other`` (same clients, keys of its own). The realms are
those of ``controlplane.stack.keycloak``; every client secret is generated at start. A third
realm, ``deployed``, is what a deployment imports: the file ``controlplane stack realm`` writes
(:func:`export_deployed_realm`), its client secrets those of the export's ``--secrets-dir``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from controlplane.cli import app as cli
from controlplane.stack.keycloak import (
    DEV_USERS,
    INVENTORY_REALM,
    OTHER_REALM,
    Keycloak,
    client_secret_file,
)

PASSWORD_CLIENT = "tests-password"
#: The realm of a deployment's export, imported next to the dev realms.
DEPLOYED_REALM = "deployed"
#: The console address the export is made for (as docker-compose.yml publishes it).
DEPLOYED_CONSOLE_URL = "http://localhost:8050"


def export_deployed_realm(folder: Path) -> tuple[Path, Path]:
    """Run ``controlplane stack realm`` as a user would: (realm file, secrets folder)."""
    realm_file, secrets_dir = folder / "realm.json", folder / "secrets"
    result = CliRunner().invoke(
        cli,
        [
            "stack",
            "realm",
            "--out",
            str(realm_file),
            "--realm",
            DEPLOYED_REALM,
            "--console-url",
            DEPLOYED_CONSOLE_URL,
            "--secrets-dir",
            str(secrets_dir),
        ],
    )
    if result.exit_code != 0:
        raise RuntimeError(f"controlplane stack realm failed: {result.output}")
    return realm_file, secrets_dir


class KeycloakServer:
    """What the ``keycloak`` fixture gives a test."""

    def __init__(
        self,
        backend: Keycloak,
        *,
        start_seconds: float,
        deployed_realm_file: Path,
        deployed_secrets_dir: Path,
    ) -> None:
        self.backend = backend
        #: Realm ``deployed``: the export Keycloak imported, and the secrets folder it came with.
        self.deployed_realm_file = deployed_realm_file
        self.deployed_secrets_dir = deployed_secrets_dir
        #: How long the server took to start and import its realms.
        self.start_seconds = start_seconds
        self._admin: httpx.Client | None = None

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def issuer(self) -> str:
        return self.backend.issuer(INVENTORY_REALM)

    @property
    def other_issuer(self) -> str:
        return self.backend.issuer(OTHER_REALM)

    @property
    def deployed_issuer(self) -> str:
        return self.backend.issuer(DEPLOYED_REALM)

    def deployed_secret(self, client_id: str) -> str:
        """``client_id``'s secret as the export's secrets folder holds it."""
        path = client_secret_file(self.deployed_secrets_dir, client_id)
        return path.read_text(encoding="utf-8").splitlines()[0].strip()

    @property
    def jwks_uri(self) -> str:
        return self.backend.jwks_uri(INVENTORY_REALM)

    @property
    def admin(self) -> httpx.Client:
        """An httpx client on ``<url>/admin/realms``, authenticated as an admin."""
        if self._admin is None:
            self._admin = self.backend.admin_client()
        return self._admin

    def client_secret(self, client_id: str, realm: str = INVENTORY_REALM) -> str:
        return self.backend.client_secret(client_id, realm)

    def client_token(
        self, client_id: str, scope: str | None = None, realm: str = INVENTORY_REALM
    ) -> str:
        """A client credentials access token."""
        return self.backend.client_token(client_id, scope=scope, realm=realm)

    def password_token(self, username: str, scope: str | None = None) -> str:
        """A user's access token (password ``<name>-pass``, through ``tests-password``)."""
        users = {user.username: user for user in DEV_USERS}
        password = users[username].password if username in users else f"{username}-pass"
        form = {
            "grant_type": "password",
            "client_id": PASSWORD_CLIENT,
            "client_secret": self.client_secret(PASSWORD_CLIENT),
            "username": username,
            "password": password,
        }
        if scope is not None:
            form["scope"] = scope
        return str(self.backend.token(form)["access_token"])

    def rotate_keys(self, realm: str = INVENTORY_REALM) -> str:
        """New RSA signing key (the old ones disabled); its ``kid``."""
        return self.backend.rotate_keys(realm)

    def register_redirect(self, client_id: str, uri: str) -> None:
        self.backend.register_redirect(client_id, uri)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
