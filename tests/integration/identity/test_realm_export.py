"""The realm a deployment imports, on the real Keycloak: the session's server imported the file
`controlplane stack realm` wrote (realm ``deployed``, next to the dev realms: no second start)
with the secrets of the export's ``--secrets-dir``. The traffic generator's client gets a token
with its secret file, and that token is one the API as docker-compose.yml and deploy/k8s
configure it accepts: its issuer is ``<KC_HOSTNAME>/realms/<realm>`` and its audience the
API's ``INVENTORY_AUTH_AUDIENCE``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml

from app.core.auth import AuthenticationFailed, KeySet, TokenValidator, http_fetcher
from app.core.client_auth import ClientAuthSettings
from controlplane.stack.keycloak import client_secret_file, secret_variable
from tests.support.keycloak import DEPLOYED_CONSOLE_URL, DEPLOYED_REALM, KeycloakServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TRAFFIC = "inventory-traffic"


def compose_api_audience() -> str:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    return str(compose["services"]["app"]["environment"]["INVENTORY_AUTH_AUDIENCE"])


def kubernetes_api_settings() -> dict[str, str]:
    kustomization = yaml.safe_load(
        (REPO / "deploy" / "k8s" / "base" / "kustomization.yaml").read_text(encoding="utf-8")
    )
    (generator,) = [
        g for g in kustomization["configMapGenerator"] if g["name"] == "inventory-config"
    ]
    return dict(literal.split("=", 1) for literal in generator["literals"])


def validate(issuer: str, audience: str, token: str) -> frozenset[str]:
    """The API's own check of ``token`` (signature from the issuer's keys, issuer, audience,
    expiry), as app.main builds it from INVENTORY_AUTH_*: the token's scopes."""

    async def check() -> frozenset[str]:
        async with httpx.AsyncClient(timeout=5) as client:
            keys = KeySet(issuer=issuer, fetch=http_fetcher(client), algorithms=["RS256"])
            validator = TokenValidator(
                issuer=issuer, audience=audience, keys=keys, algorithms=["RS256"]
            )
            return (await validator.validate(token)).scopes

    return asyncio.run(check())


def test_the_export_holds_no_secret_and_its_secrets_folder_does(keycloak: KeycloakServer) -> None:
    text = keycloak.deployed_realm_file.read_text(encoding="utf-8")
    secret = keycloak.deployed_secret(TRAFFIC)
    assert len(secret) >= 32
    assert secret not in text
    assert "${" + secret_variable(TRAFFIC) + "}" in text


def test_traffic_client_gets_a_token_the_api_as_deployed_accepts(keycloak: KeycloakServer) -> None:
    issuer = keycloak.deployed_issuer
    # The traffic generator's settings: the issuer and the secret file of the export.
    settings = ClientAuthSettings(
        issuer=issuer,
        client_id=TRAFFIC,
        client_secret_file=client_secret_file(keycloak.deployed_secrets_dir, TRAFFIC),
    )
    credentials = settings.credentials()
    assert credentials is not None
    token = credentials.token()
    # Tokens name the server's public address (KC_HOSTNAME) and the realm: the issuer form the
    # compose file and the Kubernetes manifests configure.
    assert issuer == f"{keycloak.url}/realms/{DEPLOYED_REALM}"
    compose_audience = compose_api_audience()
    k8s = kubernetes_api_settings()
    assert k8s["INVENTORY_AUTH_AUDIENCE"] == compose_audience
    assert k8s["INVENTORY_AUTH_ISSUER"].endswith("/realms/inventory")
    scopes = validate(issuer, compose_audience, token)
    assert {"inventory:read", "inventory:write"} <= scopes
    # The dev realm's issuer does not accept it (another realm, other keys).
    with pytest.raises(AuthenticationFailed, match=r"another issuer|key this API does not know"):
        validate(keycloak.issuer, compose_audience, token)


def test_the_placeholder_was_replaced_and_is_no_secret(keycloak: KeycloakServer) -> None:
    for secret in ("${" + secret_variable(TRAFFIC) + "}", keycloak.client_secret(TRAFFIC)):
        answer = httpx.post(
            f"{keycloak.deployed_issuer}/protocol/openid-connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": TRAFFIC,
                "client_secret": secret,
            },
            timeout=10,
        )
        assert answer.status_code == 401, answer.text


def test_the_console_may_return_only_to_the_exported_address(keycloak: KeycloakServer) -> None:
    found = keycloak.admin.get(
        f"/{DEPLOYED_REALM}/clients", params={"clientId": "inventory-console"}
    )
    (console,) = found.raise_for_status().json()
    assert sorted(console["redirectUris"]) == [
        f"{DEPLOYED_CONSOLE_URL}/",
        f"{DEPLOYED_CONSOLE_URL}/auth/callback",
    ]
    clients = keycloak.admin.get(f"/{DEPLOYED_REALM}/clients").raise_for_status().json()
    ids = {client["clientId"] for client in clients}
    # The tests' own clients are not part of a deployment.
    assert "tests-password" not in ids
    assert "short-lived" not in ids
    assert TRAFFIC in ids
