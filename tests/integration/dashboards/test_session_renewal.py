"""The console keeps a signed-in person's session alive with the refresh token, and ends it
when Keycloak ends theirs, against the real Keycloak and control plane (headless Chromium).

The console signs in as ``tests-console-short``, whose access tokens live 10 s: past that, an
operator action still works (the console renewed the token at Keycloak: a REFRESH_TOKEN event,
same person in the control plane's audit). Once Keycloak ends the person's sessions (admin API),
the next renewal is refused and the console signs the person out: no name, no operator controls.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest

from tests.integration.dashboards.browser import Browser, headless_browser
from tests.integration.dashboards.signin import (
    SignInStack,
    flip_kill_switch,
    sign_in,
    sign_in_stack,
)
from tests.support.keycloak import KeycloakServer

pytestmark = pytest.mark.timeout(300)

CLIENT = "tests-console-short"
#: The client's access-token lifespan (controlplane/stack/keycloak.py), plus a margin.
PAST_EXPIRY_SECONDS = 10 + 3


@pytest.fixture(scope="module")
def stack(keycloak: KeycloakServer) -> Iterator[SignInStack]:
    with sign_in_stack(keycloak, client_id=CLIENT) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Browser]:
    with headless_browser() as fresh:
        yield fresh


def kill_controls_shown(browser: Browser) -> bool:
    found = browser.find("#alerts-kill-controls")
    return bool(found) and found[0].is_displayed()


def test_the_console_renews_the_access_token_and_ends_when_keycloak_ends_the_session(
    browser: Browser, stack: SignInStack
) -> None:
    keycloak = stack.keycloak
    sign_in(browser, stack, "oscar")
    signed_in_at = time.monotonic()
    assert "Oscar Operator (oscar) · operator" in browser.text(".who-person")
    renewals_before = len(keycloak.events("REFRESH_TOKEN", CLIENT, "oscar"))

    # Past the expiry of the access token the sign-in gave, an operator action still works.
    time.sleep(max(0.0, signed_in_at + PAST_EXPIRY_SECONDS - time.monotonic()))
    flip = flip_kill_switch(browser, stack, "renewal test")
    assert flip["actor"] == "operator:oscar"
    oscar_subject = jwt.decode(
        keycloak.password_token("oscar"), options={"verify_signature": False}
    )["sub"]
    assert flip["evidence"]["requested_by"]["subject"] == oscar_subject
    assert flip["evidence"]["requested_by"]["client"] == CLIENT
    assert len(keycloak.events("REFRESH_TOKEN", CLIENT, "oscar")) > renewals_before
    assert "Oscar Operator (oscar) · operator" in browser.text(".who-person")
    browser.click("#alerts-kill-toggle")
    browser.wait_for('[data-kill-switch="off"]')

    # Keycloak ends his sessions: the console's next renewal is refused and it signs him out.
    refused_before = len(keycloak.events("REFRESH_TOKEN_ERROR", CLIENT))
    keycloak.sign_out_everywhere("oscar")
    ended_at = time.monotonic()
    time.sleep(max(0.0, ended_at + PAST_EXPIRY_SECONDS - time.monotonic()))
    browser.open(f"{stack.console.url}/alerts")
    browser.wait_for("#shell-sign-in")
    browser.wait(lambda: "sign in as an operator" in browser.text("#alerts-role-note"))
    assert browser.find(".who-person") == []
    assert not kill_controls_shown(browser)
    assert len(keycloak.events("REFRESH_TOKEN_ERROR", CLIENT)) > refused_before
    state = stack.api("/actions/state").json()
    assert state["kill_switch"] is False
