"""The identity provider against a real Keycloak: what each client and user of the dev realm gets.

Tokens are verified the way a resource server would: signature against the realm's JWKS, issuer,
audience, expiry. The expected claims are written out here from the realm's contract, not read
back from the realm definition.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from tests.support.keycloak import KeycloakServer

INVENTORY_API = "inventory-api"
CONTROLPLANE_API = "controlplane-api"


def verify(keycloak: KeycloakServer, token: str, *, issuer: str | None = None) -> dict[str, Any]:
    """The token's claims once its signature (realm JWKS), issuer and expiry check out."""
    issuer = issuer or keycloak.issuer
    jwks = jwt.PyJWKClient(f"{issuer}/protocol/openid-connect/certs", cache_keys=False)
    key = jwks.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        issuer=issuer,
        options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]},
    )
    return claims


def token_answer(keycloak: KeycloakServer, **form: str) -> httpx.Response:
    """The realm's token endpoint's answer to ``form``, whatever it is."""
    return httpx.post(f"{keycloak.issuer}/protocol/openid-connect/token", data=form)


def audiences(claims: dict[str, Any]) -> set[str]:
    aud = claims.get("aud", [])
    return {aud} if isinstance(aud, str) else set(aud)


def scopes(claims: dict[str, Any]) -> set[str]:
    return set(str(claims.get("scope", "")).split())


def test_discovery_documents_name_each_realm_and_its_endpoints(keycloak: KeycloakServer) -> None:
    inventory = httpx.get(f"{keycloak.issuer}/.well-known/openid-configuration").json()
    other = httpx.get(f"{keycloak.other_issuer}/.well-known/openid-configuration").json()

    assert inventory["issuer"] == keycloak.issuer
    assert keycloak.issuer.startswith("http://127.0.0.1:")
    assert keycloak.issuer.endswith("/realms/inventory")
    assert other["issuer"] == keycloak.other_issuer != keycloak.issuer
    assert inventory["jwks_uri"] == keycloak.jwks_uri
    assert {"authorization_code", "client_credentials", "password"} <= set(
        inventory["grant_types_supported"]
    )
    assert "S256" in inventory["code_challenge_methods_supported"]
    assert {"inventory:read", "inventory:write", "openid", "profile"} <= set(
        inventory["scopes_supported"]
    )
    # Each realm signs with keys of its own.
    inventory_kids = {k["kid"] for k in httpx.get(inventory["jwks_uri"]).json()["keys"]}
    other_kids = {k["kid"] for k in httpx.get(other["jwks_uri"]).json()["keys"]}
    assert inventory_kids
    assert other_kids
    assert not inventory_kids & other_kids


CLIENT_EXPECTATIONS = [
    # client, audiences, scopes it must have, scopes it must not have, groups
    ("inventory-traffic", {INVENTORY_API}, {"inventory:read", "inventory:write"}, set(), []),
    ("controlplane-probe", {INVENTORY_API}, {"inventory:read", "inventory:write"}, set(), []),
    ("inventory-reader", {INVENTORY_API}, {"inventory:read"}, {"inventory:write"}, []),
    ("inventory-writer", {INVENTORY_API}, {"inventory:write"}, {"inventory:read"}, []),
    ("controlplane-automation", {CONTROLPLANE_API}, set(), {"inventory:write"}, ["slo-operators"]),
    (
        "short-lived",
        {INVENTORY_API, CONTROLPLANE_API},
        {"inventory:read"},
        {"inventory:write"},
        [],
    ),
]


@pytest.mark.parametrize(
    ("client_id", "aud", "has_scopes", "lacks_scopes", "groups"), CLIENT_EXPECTATIONS
)
def test_client_credentials_tokens_carry_audience_scopes_and_groups(
    keycloak: KeycloakServer,
    client_id: str,
    aud: set[str],
    has_scopes: set[str],
    lacks_scopes: set[str],
    groups: list[str],
) -> None:
    claims = verify(keycloak, keycloak.client_token(client_id))

    assert claims["azp"] == client_id
    assert audiences(claims) == aud
    assert has_scopes <= scopes(claims)
    assert not lacks_scopes & scopes(claims)
    assert claims.get("groups", []) == groups
    assert claims["preferred_username"] == f"service-account-{client_id}"


def test_short_lived_tokens_live_two_seconds(keycloak: KeycloakServer) -> None:
    claims = verify(keycloak, keycloak.client_token("short-lived"))
    assert claims["exp"] - claims["iat"] == 2
    claims = verify(keycloak, keycloak.client_token("inventory-reader"))
    assert claims["exp"] - claims["iat"] == 300


def test_a_read_only_client_cannot_obtain_the_write_scope(keycloak: KeycloakServer) -> None:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        keycloak.client_token("inventory-reader", scope="inventory:write")
    assert refused.value.response.status_code == 400
    assert refused.value.response.json()["error"] == "invalid_scope"


def test_a_wrong_client_secret_gets_no_token(keycloak: KeycloakServer) -> None:
    answer = token_answer(
        keycloak,
        grant_type="client_credentials",
        client_id="inventory-traffic",
        client_secret=keycloak.client_secret("controlplane-probe"),
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized_client"


@pytest.mark.parametrize(
    ("username", "name", "group"),
    [
        ("vera", "Vera Viewer", "slo-viewers"),
        ("oscar", "Oscar Operator", "slo-operators"),
        ("ada", "Ada Admin", "slo-admins"),
    ],
)
def test_password_tokens_carry_the_users_name_and_group(
    keycloak: KeycloakServer, username: str, name: str, group: str
) -> None:
    claims = verify(keycloak, keycloak.password_token(username))

    assert claims["preferred_username"] == username
    assert claims["name"] == name
    assert claims["groups"] == [group]
    # The factors passed (amr): administrators also gave their one-time code.
    assert claims["amr"] == (["pwd", "otp"] if group == "slo-admins" else ["pwd"])
    assert audiences(claims) == {INVENTORY_API, CONTROLPLANE_API}
    assert {"inventory:read", "inventory:write", "profile"} <= scopes(claims)


def test_an_administrators_password_grant_needs_her_one_time_code(
    keycloak: KeycloakServer,
) -> None:
    form = keycloak.password_form("ada")
    code = form.pop("totp")
    without = token_answer(keycloak, **form)
    assert without.status_code == 400, without.text
    assert without.json()["error"] == "invalid_grant"
    wrong = token_answer(keycloak, **form, totp=f"{(int(code) + 1) % 1_000_000:06d}")
    assert wrong.status_code == 400, wrong.text
    granted = token_answer(keycloak, **form, totp=code)
    assert granted.status_code == 200, granted.text
    # The same code a second time is refused (a code is good once).
    replayed = token_answer(keycloak, **form, totp=code)
    assert replayed.status_code == 400, replayed.text
    # A renewed token still says she passed both factors.
    renewed = token_answer(
        keycloak,
        grant_type="refresh_token",
        client_id=form["client_id"],
        client_secret=form["client_secret"],
        refresh_token=granted.json()["refresh_token"],
    )
    assert renewed.status_code == 200, renewed.text
    assert verify(keycloak, renewed.json()["access_token"])["amr"] == ["pwd", "otp"]


def test_an_operator_needs_no_one_time_code(keycloak: KeycloakServer) -> None:
    form = keycloak.password_form("oscar")
    assert "totp" not in form
    assert token_answer(keycloak, **form).status_code == 200


def test_a_wrong_password_gets_no_token(keycloak: KeycloakServer) -> None:
    answer = token_answer(
        keycloak,
        grant_type="password",
        client_id="tests-password",
        client_secret=keycloak.client_secret("tests-password"),
        username="vera",
        password="oscar-pass",
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_the_console_client_has_no_password_or_client_credentials_grant(
    keycloak: KeycloakServer,
) -> None:
    console = {"client_id": "inventory-console"}
    console["client_secret"] = keycloak.client_secret("inventory-console")
    password = token_answer(
        keycloak, grant_type="password", username="ada", password="ada-pass", **console
    )
    credentials = token_answer(keycloak, grant_type="client_credentials", **console)
    assert password.status_code == 400
    assert password.json()["error"] == "unauthorized_client"
    assert credentials.status_code == 401
    assert credentials.json()["error"] == "unauthorized_client"


def _auth_url(keycloak: KeycloakServer, redirect_uri: str, challenge: str | None) -> str:
    params = {
        "client_id": "inventory-console",
        "response_type": "code",
        "scope": "openid profile",
        "redirect_uri": redirect_uri,
        "state": secrets.token_urlsafe(8),
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return str(httpx.URL(f"{keycloak.issuer}/protocol/openid-connect/auth", params=params))


def test_console_sign_in_with_pkce_on_any_loopback_port(keycloak: KeycloakServer) -> None:
    """The browser flow end to end: login page, password form, code, PKCE exchange."""
    redirect_uri = "http://127.0.0.1:54321/auth/callback"
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    with httpx.Client(timeout=10) as browser:
        page = browser.get(_auth_url(keycloak, redirect_uri, challenge))
        assert page.status_code == 200
        form = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', page.text)
        assert form, page.text[:500]
        # Keycloak's cookies are Secure; a browser sends them to http://127.0.0.1 (a secure
        # context), httpx does not: send them as a browser would.
        cookies = "; ".join(f"{name}={value}" for name, value in page.cookies.items())
        signed_in = browser.post(
            html.unescape(form.group(1)),
            data={"username": "oscar", "password": "oscar-pass"},
            headers={"Cookie": cookies},
        )
    assert signed_in.status_code == 302
    location = signed_in.headers["Location"]
    assert location.startswith(redirect_uri + "?")
    code = parse_qs(urlsplit(location).query)["code"][0]

    tokens = token_answer(
        keycloak,
        grant_type="authorization_code",
        client_id="inventory-console",
        client_secret=keycloak.client_secret("inventory-console"),
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )
    assert tokens.status_code == 200, tokens.text
    access = verify(keycloak, tokens.json()["access_token"])
    assert audiences(access) == {CONTROLPLANE_API}
    assert access["groups"] == ["slo-operators"]
    assert access["name"] == "Oscar Operator"
    id_token = verify(keycloak, tokens.json()["id_token"])
    assert id_token["aud"] == "inventory-console"
    assert id_token["groups"] == ["slo-operators"]


def test_console_sign_in_refuses_other_hosts_and_missing_pkce(keycloak: KeycloakServer) -> None:
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    elsewhere = httpx.get(_auth_url(keycloak, "http://attacker.example/auth/callback", challenge))
    no_pkce = httpx.get(_auth_url(keycloak, "http://127.0.0.1:54321/auth/callback", None))
    assert elsewhere.status_code == 400
    # Without a code challenge Keycloak sends the browser back with an error, no code.
    assert no_pkce.status_code == 302
    query = parse_qs(urlsplit(no_pkce.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "code" not in query


def test_a_token_of_the_other_realm_does_not_verify_against_the_inventory_realm(
    keycloak: KeycloakServer,
) -> None:
    token = keycloak.client_token("inventory-traffic", realm="other")
    claims = verify(keycloak, token, issuer=keycloak.other_issuer)
    assert claims["iss"] == keycloak.other_issuer
    with pytest.raises(jwt.PyJWKClientError):
        jwt.PyJWKClient(keycloak.jwks_uri, cache_keys=False).get_signing_key_from_jwt(token)


def test_a_short_lived_token_verifies_and_then_expires(keycloak: KeycloakServer) -> None:
    token = keycloak.client_token("short-lived")
    assert verify(keycloak, token)["azp"] == "short-lived"

    time.sleep(3.2)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(keycloak, token)


KEY_PROVIDERS = {"type": "org.keycloak.keys.KeyProvider"}


@pytest.fixture
def keys_put_back(keycloak: KeycloakServer) -> Iterator[None]:
    """After the test, the realm's key providers as they were: the session's other tests go on
    with the original signing key (a server that cached the JWKS before is not surprised)."""
    before = keycloak.admin.get("/inventory/components", params=KEY_PROVIDERS).json()
    yield
    after = keycloak.admin.get("/inventory/components", params=KEY_PROVIDERS).json()
    known = {component["id"] for component in before}
    for component in after:
        if component["id"] not in known:
            keycloak.admin.delete(f"/inventory/components/{component['id']}").raise_for_status()
    for component in before:  # secrets come back masked: Keycloak keeps the stored ones
        keycloak.admin.put(
            f"/inventory/components/{component['id']}", json=component
        ).raise_for_status()


def test_key_rotation_signs_new_tokens_with_a_new_key_listed_in_the_jwks(
    keycloak: KeycloakServer, keys_put_back: None
) -> None:
    before = keycloak.client_token("inventory-traffic")
    old_kid = jwt.get_unverified_header(before)["kid"]

    new_kid = keycloak.rotate_keys()

    after = keycloak.client_token("inventory-traffic")
    assert new_kid != old_kid
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    listed = {k["kid"] for k in httpx.get(keycloak.jwks_uri).json()["keys"] if k["use"] == "sig"}
    assert new_kid in listed
    assert old_kid not in listed  # the old key is disabled: its tokens no longer verify
    assert verify(keycloak, after)["azp"] == "inventory-traffic"
    with pytest.raises(jwt.PyJWKClientError):
        verify(keycloak, before)


def test_the_original_signing_key_is_back_after_the_rotation_test(
    keycloak: KeycloakServer,
) -> None:
    """Runs after the rotation test (file order): its fixture restored the realm's keys."""
    token = keycloak.client_token("inventory-traffic")
    assert verify(keycloak, token)["azp"] == "inventory-traffic"
    signing = [k for k in httpx.get(keycloak.jwks_uri).json()["keys"] if k["use"] == "sig"]
    assert [k["kid"] for k in signing if k["alg"] == "RS256"] == [
        jwt.get_unverified_header(token)["kid"]
    ]
