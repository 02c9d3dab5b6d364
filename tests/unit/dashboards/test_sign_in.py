"""The console's sign-in without a browser: what it refuses at start, the redirect to the
provider (PKCE S256, state, nonce), the session cookie's attributes, how long a session lasts,
and where it may send the browser back to. The whole flow through Keycloak's login page is
tested in tests/integration/dashboards/test_sign_in.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from controlplane.client.http import ControlPlaneClient
from controlplane.core.security import Role, parse_role_groups
from dashboards.__main__ import main
from dashboards.app import create_app
from dashboards.auth import ConsoleAuth, Person, _safe_next
from dashboards.config import DashboardSettings, SettingsError
from tests.support.token_issuer import TokenIssuer, token_issuer

SESSION_SECRET = "a-session-secret-of-at-least-32-characters"


@pytest.fixture
def issuer() -> Iterator[TokenIssuer]:
    with token_issuer() as running:
        yield running


def console_auth(issuer: TokenIssuer, role_groups: str) -> ConsoleAuth:
    return ConsoleAuth(
        issuer=issuer.issuer,
        client_id="inventory-console",
        client_secret="client-secret",
        scope="openid profile",
        role_groups=parse_role_groups(role_groups),
        max_age_seconds=3600,
        control_plane_url="http://127.0.0.1:9",
        request_timeout=5,
    )


def test_sign_in_without_its_secrets_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = tmp_path / "token"
    token.write_text("cpt_x\n", encoding="utf-8")
    client_secret = tmp_path / "client.secret"
    client_secret.write_text("client-secret\n", encoding="utf-8")
    monkeypatch.setenv("DASHBOARDS_OIDC_ISSUER", "http://127.0.0.1:9/realms/inventory")
    monkeypatch.setenv("DASHBOARDS_OIDC_CLIENT_SECRET_FILE", str(client_secret))
    with caplog.at_level(logging.ERROR, logger="dashboards"):
        assert main(["--token-file", str(token)]) == 2
    assert "DASHBOARDS_SESSION_SECRET_FILE is required" in caplog.text
    short = tmp_path / "short.secret"
    short.write_text("too-short\n", encoding="utf-8")
    settings = DashboardSettings(
        oidc_issuer="http://127.0.0.1:9/realms/inventory",
        oidc_client_secret_file=client_secret,
        session_secret_file=short,
    )
    with pytest.raises(SettingsError, match="at least 32 characters"):
        settings.oidc_secrets()
    assert DashboardSettings(oidc_issuer=None).oidc_secrets() is None  # read-only: none needed


def test_sign_in_redirects_with_pkce_and_sets_a_safe_cookie(issuer: TokenIssuer) -> None:
    auth = console_auth(issuer, "operator=slo-operators")
    unreachable = httpx.MockTransport(lambda request: httpx.Response(503))
    client = ControlPlaneClient(base_url="http://127.0.0.1:9", token="t", transport=unreachable)
    app = create_app(
        client=client,
        settings=DashboardSettings(token="t"),
        auth=auth,
        session_secret=SESSION_SECRET,
    )
    browser = app.server.test_client()
    answer = browser.get("/auth/login?next=/alerts")
    assert answer.status_code == 302
    target = urlsplit(answer.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{issuer.issuer}/auth"
    query = parse_qs(target.query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["redirect_uri"] == ["http://localhost/auth/callback"]
    assert query["state"]
    assert query["nonce"]
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("console_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    # A callback that is not the answer to this sign-in (wrong state) signs nobody in.
    refused = browser.get("/auth/callback?code=x&state=forged")
    assert refused.status_code == 400
    # Without a session, signing out only goes home.
    assert browser.post("/auth/logout").headers["Location"] == "/"


def test_a_session_ends_at_its_maximum_age_or_with_the_providers() -> None:
    person = Person(
        subject="s",
        username="oscar",
        name="Oscar Operator",
        groups=("slo-operators",),
        role=Role.OPERATOR,
        access_token="a",
        access_expires_at=1_300.0,
        refresh_token="r",
        refresh_expires_at=2_800.0,
        id_token=None,
        ends_at=1_000.0 + 8 * 3600,
    )
    assert person.expires_at() == 2_800.0  # the provider's session ends first
    assert Person(**{**person.__dict__, "refresh_expires_at": 99_999.0}).expires_at() == (
        1_000.0 + 8 * 3600
    )
    assert person.is_operator
    assert not Person(**{**person.__dict__, "role": Role.VIEWER}).is_operator
    # A 300 s token is renewed 20 s before it expires, a 10 s token halfway through.
    assert Person(**{**person.__dict__, "access_issued_at": 1_000.0}).renew_at() == 1_280.0
    short = {"access_issued_at": 1_000.0, "access_expires_at": 1_010.0}
    assert Person(**{**person.__dict__, **short}).renew_at() == 1_005.0


def test_the_console_gives_admin_only_to_a_person_who_passed_a_second_factor(
    issuer: TokenIssuer,
) -> None:
    auth = console_auth(issuer, "operator=slo-operators,admin=slo-admins")

    def person(groups: list[str], amr: list[str] | None) -> Person:
        claims = {"sub": "s", "preferred_username": "ada", "groups": groups}
        if amr is not None:
            claims["amr"] = amr
        token = {"userinfo": claims, "access_token": "a", "expires_in": 300}
        return auth._person_from(token, now=1_000.0, ends_at=4_600.0)

    assert person(["slo-admins"], ["pwd", "otp"]).role is Role.ADMIN
    assert person(["slo-admins"], ["pwd", "otp"]).second_factor
    assert person(["slo-admins"], ["pwd"]).role is Role.OPERATOR
    assert person(["slo-admins"], ["pwd"]).needs_second_factor
    assert not person(["slo-admins"], ["pwd", "otp"]).needs_second_factor
    assert person(["slo-admins"], None).role is Role.OPERATOR
    assert person(["slo-operators"], ["pwd"]).role is Role.OPERATOR


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("/alerts", "/alerts"),
        ("/slo/read-latency?x=1", "/slo/read-latency?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
    ],
)
def test_after_sign_in_the_browser_only_goes_back_to_this_console(
    asked: str | None, kept: str
) -> None:
    assert _safe_next(asked) == kept
