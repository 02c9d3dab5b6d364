"""Sign-in to the console through the real Keycloak (its own login page, authorization code with
PKCE) in headless Chromium, against a real control plane that trusts the same realm:

* Oscar (slo-operators) signs in with his password only, approves a pending action and flips
  the kill switch; the control plane's audit log names him (subject, username, name) and the
  console shows it;
* Vera (slo-viewers) sees no operator controls, and the API refuses her token with 403;
* Ada (slo-admins) must pass a second factor: with no OTP yet she is made to set one up (the key
  read from Keycloak's setup page, codes computed with pyotp), then she is an admin on the
  console; her next sign-in asks for a code, and a wrong code is refused;
* signing out ends the console session and Keycloak's (the next sign-in asks for a password).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import jwt
import pytest
from selenium.webdriver.common.by import By

from tests.integration.dashboards.browser import Browser, headless_browser
from tests.integration.dashboards.signin import (
    CONSOLE_CLIENT,
    SignInStack,
    back_on_the_console,
    flip_kill_switch,
    open_login_page,
    set_up_otp,
    sign_in,
    sign_in_stack,
    submit_code,
    submit_password,
)
from tests.support.keycloak import KeycloakServer

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stack(keycloak: KeycloakServer) -> Iterator[SignInStack]:
    with sign_in_stack(keycloak) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A new Chromium profile per test: no console or Keycloak session carried over."""
    with headless_browser() as fresh:
        yield fresh


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

    flip = flip_kill_switch(browser, stack, "sign-in test")
    state = stack.api("/actions/state").json()
    assert (state["kill_switch"], state["changed_by"]) == (True, "oscar")
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


def test_ada_sets_up_a_one_time_code_and_needs_it_at_every_sign_in(
    browser: Browser, stack: SignInStack
) -> None:
    keycloak = stack.keycloak
    keycloak.forget_otp("ada")  # as after an administrator reset her second factor
    # Without an OTP her password alone gets no token from the password grant either.
    refused = httpx.post(
        keycloak.backend.token_endpoint(), data=keycloak.password_form("ada"), timeout=10
    )
    # (Keycloak answers 500 when a required credential is not set up in a password grant.)
    assert refused.status_code == 500, refused.text
    assert "access_token" not in refused.json()
    open_login_page(browser, stack)
    submit_password(browser, "ada")
    # No OTP yet: Keycloak makes her set one up before anything else.
    browser.wait_for("#kc-totp-settings-form")
    assert browser.driver.current_url.startswith(keycloak.issuer)
    assert browser.find(".who-person") == []
    set_up_otp(browser, keycloak, "ada")
    back_on_the_console(browser, stack)
    # Setting the code up passed no second factor (her password alone let her enrol it):
    # operator rights until she signs in with a code.
    assert "Ada Admin (ada) · operator (admin needs a sign-in with a one-time code" in (
        browser.text(".who-person")
    )
    # The control plane gives her admin rights with her second factor only.
    ada = keycloak.password_token("ada")
    me = stack.api("/me", token=ada).json()
    assert (me["role"], me["second_factor"]) == ("admin", True)
    assert stack.api("/tokens", token=ada).status_code == 200

    browser.click("#shell-sign-out")
    browser.wait_for("#shell-sign-in")
    open_login_page(browser, stack)
    submit_password(browser, "ada")
    good = keycloak.otp_code("ada")
    submit_code(browser, f"{(int(good) + 1) % 1_000_000:06d}")
    browser.wait(
        lambda: "Invalid authenticator code" in browser.driver.page_source,
        what="Keycloak refusing the wrong code",
    )
    assert browser.driver.current_url.startswith(keycloak.issuer)
    submit_code(browser, good)
    back_on_the_console(browser, stack)
    assert browser.text(".who-person") == "Ada Admin (ada) · admin"
    browser.wait(
        lambda: browser.driver.find_element(By.ID, "alerts-kill-controls").is_displayed(),
        what="the kill switch controls",
    )
    browser.screenshot("alerts-signed-in-admin-with-otp")


def test_oscar_is_asked_for_no_one_time_code(browser: Browser, stack: SignInStack) -> None:
    open_login_page(browser, stack)
    submit_password(browser, "oscar")
    # Straight back to the console: no code page, no setup page in between.
    back_on_the_console(browser, stack)
    assert "Oscar Operator (oscar) · operator" in browser.text(".who-person")
