"""The session's Keycloak as tests use it: issuers, client secrets, tokens, key rotation.

One Keycloak serves the whole session (it takes tens of seconds to start): realm ``inventory``
(the one the product trusts) and realm ``other`` (same clients, keys of its own). The realms are
those of ``controlplane.stack.keycloak``; every client secret is generated at start. A third
realm, ``deployed``, is what a deployment imports: the file ``controlplane stack realm`` writes
(:func:`export_deployed_realm`), its client secrets those of the export's ``--secrets-dir``.

Administrators (group ``slo-admins``) must pass a one-time code, in the browser and in the
password grant alike. So that tests can sign ``ada`` in without a browser, the session's
Keycloak imports her with an OTP key (:func:`otp_secrets_for_tests`);
:meth:`KeycloakServer.otp_code` computes her codes (pyotp), never the same one twice (Keycloak
refuses a code used before). A test that makes her set up a new OTP tells the fixture her new key
(:meth:`KeycloakServer.remember_otp`).
"""

from __future__ import annotations

import base64
import secrets
import time
from pathlib import Path

import httpx
import pyotp
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


#: OTP period of the realm (Keycloak's default policy: TOTP, SHA-1, 6 digits, 30 s, one period
#: of look-around either side).
OTP_PERIOD = 30


def otp_secrets_for_tests() -> dict[str, str]:
    """username -> raw OTP key imported with the user (fresh per test session)."""
    return {"ada": secrets.token_hex(10)}


def base32_key(raw: str) -> str:
    """An OTP key as authenticator apps take it (what Keycloak's setup page shows)."""
    return base64.b32encode(raw.encode("utf-8")).decode("ascii")


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
        #: username -> base32 OTP key, and the time steps whose code was already sent.
        self._otp_keys = {name: base32_key(raw) for name, raw in backend.otp_secrets.items()}
        self._otp_used: dict[str, set[int]] = {}

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

    def has_otp(self, username: str) -> bool:
        return username in self._otp_keys

    def remember_otp(self, username: str, base32: str) -> None:
        """``username`` set up a new OTP with this (base32) key: later codes come from it."""
        self._otp_keys[username] = base32.replace(" ", "").upper()
        self._otp_used[username] = set()

    def user_id(self, username: str) -> str:
        found = self.admin.get(
            f"/{INVENTORY_REALM}/users", params={"username": username, "exact": "true"}
        )
        return str(found.raise_for_status().json()[0]["id"])

    def forget_otp(self, username: str) -> None:
        """Remove ``username``'s OTP credentials (admin API), as an administrator resetting
        a lost second factor: the next sign-in makes them set up a new one."""
        user = self.user_id(username)
        credentials = self.admin.get(f"/{INVENTORY_REALM}/users/{user}/credentials")
        for credential in credentials.raise_for_status().json():
            if credential["type"] == "otp":
                self.admin.delete(
                    f"/{INVENTORY_REALM}/users/{user}/credentials/{credential['id']}"
                ).raise_for_status()
        self._otp_keys.pop(username, None)

    def sign_out_everywhere(self, username: str) -> None:
        """End every session of ``username`` at Keycloak (admin API): their refresh tokens
        stop working."""
        user = self.user_id(username)
        self.admin.post(f"/{INVENTORY_REALM}/users/{user}/logout").raise_for_status()

    def events(
        self, event_type: str, client_id: str, username: str | None = None
    ) -> list[dict[str, object]]:
        """Keycloak's stored events of one type through ``client_id`` (of ``username``)."""
        params = {"type": event_type, "client": client_id, "max": "1000"}
        if username is not None:
            params["user"] = self.user_id(username)
        found = self.admin.get(f"/{INVENTORY_REALM}/events", params=params)
        events: list[dict[str, object]] = found.raise_for_status().json()
        return events

    def otp_code(self, username: str) -> str:
        """A one-time code of ``username`` that Keycloak has not seen yet: the current period's,
        the next one's or the previous one's (Keycloak accepts one period either side), else
        the next free one after a wait."""
        totp = pyotp.TOTP(self._otp_keys[username], interval=OTP_PERIOD)
        used = self._otp_used.setdefault(username, set())
        while True:
            now = time.time()
            step = int(now // OTP_PERIOD)
            # The previous period's code too, unless the period is about to turn.
            earlier = [step - 1] if (step + 1) * OTP_PERIOD - now > 3 else []
            for candidate in (step, step + 1, *earlier):
                if candidate not in used:
                    used.add(candidate)
                    return str(totp.at(candidate * OTP_PERIOD))
            time.sleep((step + 1) * OTP_PERIOD - time.time() + 0.2)

    def password_form(self, username: str, scope: str | None = None) -> dict[str, str]:
        """The password grant's form for ``username`` (with a one-time code, ``totp``, when the
        user has an OTP the tests know)."""
        users = {user.username: user for user in DEV_USERS}
        password = users[username].password if username in users else f"{username}-pass"
        form = {
            "grant_type": "password",
            "client_id": PASSWORD_CLIENT,
            "client_secret": self.client_secret(PASSWORD_CLIENT),
            "username": username,
            "password": password,
        }
        if self.has_otp(username):
            form["totp"] = self.otp_code(username)
        if scope is not None:
            form["scope"] = scope
        return form

    def password_token(self, username: str, scope: str | None = None) -> str:
        """A user's access token (password ``<name>-pass``, through ``tests-password``; an
        administrator's with her one-time code)."""
        return str(self.backend.token(self.password_form(username, scope))["access_token"])

    def rotate_keys(self, realm: str = INVENTORY_REALM) -> str:
        """New RSA signing key (the old ones disabled); its ``kid``."""
        return self.backend.rotate_keys(realm)

    def register_redirect(self, client_id: str, uri: str) -> None:
        self.backend.register_redirect(client_id, uri)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
