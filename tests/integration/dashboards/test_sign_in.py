"""Sign-in to the console through the real Keycloak (its own login page, authorization code with
PKCE) in headless Chromium, against a real control plane that trusts the same realm:

* Oscar (slo-operators) signs in, approves a pending action and flips the kill switch; the
  control plane's audit log names him (subject, username, name) and the console shows it;
* Vera (slo-viewers) sees no operator controls, and the API refuses her token with 403;
* signing out ends the console session and Keycloak's (the next sign-in asks for a password).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest
from selenium.webdriver.common.by import By

from controlplane.core.security import Role
from controlplane.store.audit import AuditDecision, record_decision
from controlplane.store.database import Database
from controlplane.store.tokens import create_token
from tests.integration.controlplane.processes import ControlPlaneProcess
from tests.integration.dashboards.browser import Browser, ConsoleProcess, headless_browser
from tests.support.keycloak import KeycloakServer

pytestmark = pytest.mark.timeout(300)

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


@pytest.fixture(scope="module")
def stack(keycloak: KeycloakServer) -> Iterator[SignInStack]:
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
        secret_file.write_text(keycloak.client_secret(CONSOLE_CLIENT), encoding="utf-8")
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
                "DASHBOARDS_OIDC_CLIENT_SECRET_FILE": str(secret_file),
                "DASHBOARDS_SESSION_SECRET_FILE": str(session_file),
            },
        )
        # Where Keycloak sends the browser back after signing out (a registered URI).
        keycloak.register_redirect(CONSOLE_CLIENT, f"{console.url}/")
        console.start()
        try:
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


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A new Chromium profile per test: no console or Keycloak session carried over."""
    with headless_browser() as fresh:
        yield fresh


def sign_in(browser: Browser, stack: SignInStack, username: str) -> None:
    """Through the console's "Sign in" link and Keycloak's own login page, back to /alerts."""
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
    browser.driver.find_element(By.ID, "username").send_keys(username)
    browser.driver.find_element(By.ID, "password").send_keys(f"{username}-pass")
    browser.driver.find_element(By.ID, "kc-login").click()
    browser.wait(
        lambda: browser.driver.current_url.startswith(f"{stack.console.url}/alerts"),
        what="the way back to the console",
    )
    browser.wait(lambda: browser.find(".who-person"), what="the signed-in person")
    browser.wait_idle()


def test_oscar_signs_in_approves_and_the_audit_names_him(
    browser: Browser, stack: SignInStack
) -> None:
    decision_id = stack.pending("approval mode: read-latency burns, 5 -> 7 replicas")
    sign_in(browser, stack, "oscar")
    assert "Oscar Operator (oscar) · operator" in browser.text(".who-person")
    browser.wait(
        lambda: browser.driver.find_element(By.ID, "alerts-kill-controls").is_displayed(),
        what="the kill switch controls",
    )
    assert "signed in as Oscar Operator" in browser.text("#alerts-role-note")
    row = browser.wait_for(f'.pending-table tr[data-decision="{decision_id}"]')
    row.find_element(By.CSS_SELECTOR, "button.approve").click()
    browser.wait(lambda: "approved scale_out" in browser.text("#alerts-verdict-message"))

    oscar_subject = jwt.decode(
        stack.keycloak.password_token("oscar"), options={"verify_signature": False}
    )["sub"]
    (entry,) = [e for e in stack.api("/audit?limit=50").json() if e["decision_id"] == decision_id]
    assert entry["decision"] == "taken"
    assert "approved by oscar" in entry["reason"]
    approver = entry["evidence"]["approved_by"]
    assert approver["subject"] == oscar_subject
    assert (approver["preferred_username"], approver["name"]) == ("oscar", "Oscar Operator")
    assert approver["client"] == CONSOLE_CLIENT
    audit_row = browser.wait_for(f'.audit-table tr[data-decision="{decision_id}"]')
    browser.wait(lambda: "approved by Oscar Operator (oscar)" in audit_row.text)

    browser.driver.find_element(By.ID, "alerts-kill-reason").send_keys("sign-in test")
    browser.click("#alerts-kill-toggle")
    browser.wait_for('[data-kill-switch="on"]')
    state = stack.api("/actions/state").json()
    assert (state["kill_switch"], state["changed_by"]) == (True, "oscar")
    (flip,) = stack.api("/audit?action=kill_switch&limit=1").json()
    assert flip["actor"] == "operator:oscar"
    assert flip["evidence"]["requested_by"]["subject"] == oscar_subject
    browser.click("#alerts-kill-toggle")
    browser.wait_for('[data-kill-switch="off"]')
    browser.screenshot("alerts-signed-in-operator")


def test_vera_sees_no_operator_controls_and_the_api_refuses_her(
    browser: Browser, stack: SignInStack
) -> None:
    decision_id = stack.pending("approval mode: vera must not approve this")
    sign_in(browser, stack, "vera")
    assert "Vera Viewer (vera) · viewer" in browser.text(".who-person")
    browser.wait(lambda: "need the operator role" in browser.text("#alerts-role-note"))
    browser.wait_for(f'.pending-table tr[data-decision="{decision_id}"]')
    assert not browser.driver.find_element(By.ID, "alerts-kill-controls").is_displayed()
    assert browser.find(".pending-table button") == []

    vera = stack.keycloak.password_token("vera")
    assert stack.api("/slos", token=vera).status_code == 200
    flip = httpx.put(
        f"{stack.control_plane.url}/api/v1/actions/kill-switch",
        json={"enabled": True},
        headers={"Authorization": f"Bearer {vera}"},
        timeout=10,
    )
    assert flip.status_code == 403
    assert "vera is viewer" in flip.json()["detail"]
    approve = httpx.post(
        f"{stack.control_plane.url}/api/v1/actions/{decision_id}/approve",
        json={},
        headers={"Authorization": f"Bearer {vera}"},
        timeout=10,
    )
    assert approve.status_code == 403
    pending = stack.api("/actions/pending").json()
    assert decision_id in [p["decision_id"] for p in pending]


def test_sign_out_ends_the_console_and_the_provider_session(
    browser: Browser, stack: SignInStack
) -> None:
    sign_in(browser, stack, "oscar")
    cookie = browser.driver.get_cookie("console_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    browser.click("#shell-sign-out")
    browser.wait(
        lambda: browser.driver.current_url.rstrip("/") == stack.console.url,
        what="the way back to the console after signing out",
    )
    browser.wait_for("#shell-sign-in")
    assert browser.find(".who-person") == []
    # The old cookie no longer opens a session, and Keycloak asks for the password again.
    browser.driver.add_cookie({"name": "console_session", "value": cookie["value"]})
    browser.open(f"{stack.console.url}/alerts")
    browser.wait(lambda: "sign in as an operator" in browser.text("#alerts-role-note"))
    browser.click("#shell-sign-in")
    browser.wait_for("#username")
