"""A console that people sign in to through the real Keycloak, against a real control plane
that trusts the same realm, and the browser steps on Keycloak's own pages (password, one-time
code, setting up an OTP). Used by ``test_sign_in.py`` and ``test_session_renewal.py``."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from selenium.webdriver.common.by import By

from controlplane.core.security import Role
from controlplane.store.audit import AuditDecision, record_decision
from controlplane.store.database import Database
from controlplane.store.tokens import create_token
from tests.integration.controlplane.processes import ControlPlaneProcess
from tests.integration.dashboards.browser import Browser, ConsoleProcess
from tests.support.keycloak import KeycloakServer

CONSOLE_CLIENT = "inventory-console"


@dataclass(frozen=True)
class SignInStack:
    control_plane: ControlPlaneProcess
    console: ConsoleProcess
    database_url: str
    viewer_token: str
    keycloak: KeycloakServer

    def api(self, path: str, token: str | None = None) -> httpx.Response:
        return httpx.get(
            f"{self.control_plane.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {token or self.viewer_token}"},
            timeout=10,
        )

    def pending(self, reason: str) -> str:
        database = Database.from_url(self.database_url)
        try:
            with database.writer() as session:
                entry = record_decision(
                    session,
                    decision=AuditDecision(
                        at=datetime.now(UTC),
                        actor="controlplane-test",
                        action="scale_out",
                        target="deployment/inventory",
                        decision="pending",
                        reason=reason,
                        evidence={"service": "inventory"},
                    ),
                )
        finally:
            database.dispose()
        return entry.decision_id


@contextmanager
def sign_in_stack(
    keycloak: KeycloakServer, *, client_id: str = CONSOLE_CLIENT
) -> Iterator[SignInStack]:
    """A control plane trusting the realm and a console signing people in as ``client_id``."""
    with tempfile.TemporaryDirectory(prefix="console-sign-in-") as name:
        folder = Path(name)
        database_url = f"sqlite:///{folder}/controlplane.db"
        database = Database.from_url(database_url)
        database.migrate()
        with database.writer() as session:
            _, viewer_token = create_token(
                session, name="console-service", role=Role.VIEWER, at=datetime.now(UTC)
            )
        database.dispose()
        control_plane = ControlPlaneProcess(
            settings={
                "database_url": database_url,
                "webhook_token": "sign-in-webhook-token",
                "evaluation_interval_seconds": "3600",
                "leader_election": "false",
                "oidc_issuer": keycloak.issuer,
            },
            log_path=folder / "controlplane.log",
        ).start()
        secret_file = folder / "console-client.secret"
        secret_file.write_text(keycloak.client_secret(client_id), encoding="utf-8")
        session_file = folder / "session.secret"
        session_file.write_text("s" * 16 + "-session-secret-for-the-tests-only", encoding="utf-8")
        for path in (secret_file, session_file):
            path.chmod(0o600)
        console_folder = folder / "console"
        console_folder.mkdir()
        console = ConsoleProcess(
            control_plane=control_plane.url,
            token=viewer_token,
            workdir=console_folder,
            environment={
                "DASHBOARDS_OIDC_ISSUER": keycloak.issuer,
                "DASHBOARDS_OIDC_CLIENT_ID": client_id,
                "DASHBOARDS_OIDC_CLIENT_SECRET_FILE": str(secret_file),
                "DASHBOARDS_SESSION_SECRET_FILE": str(session_file),
            },
        )
        # Where Keycloak sends the browser back after signing out (a registered URI).
        keycloak.register_redirect(client_id, f"{console.url}/")
        try:
            console.start()
            yield SignInStack(
                control_plane=control_plane,
                console=console,
                database_url=database_url,
                viewer_token=viewer_token,
                keycloak=keycloak,
            )
        finally:
            console.stop()
            control_plane.stop()


def open_login_page(browser: Browser, stack: SignInStack) -> None:
    """Through the console's "Sign in" link to Keycloak's login page."""
    browser.open(f"{stack.console.url}/alerts")
    try:
        browser.click("#shell-sign-in")
    except AssertionError as exc:
        browser.screenshot("sign-in-missing")
        header = browser.driver.execute_script(
            "const h = document.querySelector('.shell-header'); return h ? h.outerHTML : ''"
        )
        raise AssertionError(
            f"no sign-in link at {browser.driver.current_url}: {header} "
            f"{browser.console_errors()} {stack.console.log_tail()}"
        ) from exc
    browser.wait_for("#username")
    assert browser.driver.current_url.startswith(stack.keycloak.issuer)
    assert "code_challenge_method=S256" in browser.driver.current_url


def submit_password(browser: Browser, username: str) -> None:
    browser.driver.find_element(By.ID, "username").send_keys(username)
    browser.driver.find_element(By.ID, "password").send_keys(f"{username}-pass")
    browser.driver.find_element(By.ID, "kc-login").click()


def submit_code(browser: Browser, code: str) -> None:
    """Keycloak's one-time code page: the code, then "Sign In"."""
    field = browser.wait_for("#otp")
    field.clear()
    field.send_keys(code)
    browser.driver.find_element(By.ID, "kc-login").click()


def set_up_otp(browser: Browser, keycloak: KeycloakServer, username: str) -> str:
    """Keycloak's "Mobile Authenticator Setup" page: "Unable to scan?" shows the key as text;
    the first code from it (pyotp) and a device name finish the setup. The key (base32)."""
    browser.wait_for("#mode-manual").click()
    shown = browser.wait_for("#kc-totp-secret-key").text
    key = re.sub(r"\s+", "", shown)
    assert re.fullmatch(r"[A-Z2-7]{16,}=*", key), shown
    keycloak.remember_otp(username, key)
    browser.driver.find_element(By.ID, "totp").send_keys(keycloak.otp_code(username))
    browser.driver.find_element(By.ID, "userLabel").send_keys("test phone")
    browser.driver.find_element(By.ID, "saveTOTPBtn").click()
    return key


def back_on_the_console(browser: Browser, stack: SignInStack) -> None:
    browser.wait(
        lambda: browser.driver.current_url.startswith(f"{stack.console.url}/alerts"),
        what="the way back to the console",
    )
    browser.wait(lambda: browser.find(".who-person"), what="the signed-in person")
    browser.wait_idle()


def sign_in(browser: Browser, stack: SignInStack, username: str) -> None:
    """Password only (no second factor asked), back to /alerts."""
    open_login_page(browser, stack)
    submit_password(browser, username)
    back_on_the_console(browser, stack)


def flip_kill_switch(browser: Browser, stack: SignInStack, reason: str) -> dict[str, Any]:
    """Turn the kill switch on from the alerts page (an operator's control); the audit entry
    of the flip as the control plane recorded it."""
    browser.driver.find_element(By.ID, "alerts-kill-reason").send_keys(reason)
    browser.click("#alerts-kill-toggle")
    browser.wait_for('[data-kill-switch="on"]')
    (flip,) = stack.api("/audit?action=kill_switch&limit=1").json()
    entry: dict[str, Any] = flip
    return entry
