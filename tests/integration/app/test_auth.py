"""Authentication of the inventory API against the real identity provider (Keycloak).

The API runs as operators run it (gunicorn, ``INVENTORY_AUTH_ISSUER`` set to the realm
``inventory``); tokens come from Keycloak's token endpoint. Every route of the app is walked:
401 without a token, 403 with a read-only token on writes and with a write-only one on reads;
the probes and ``/metrics`` stay open.
The key rotation test comes last in the module: it changes the provider's keys for the session.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.api.auth import READ_SCOPE, WRITE_SCOPE, scope_for
from app.core.client_auth import ClientCredentials
from app.core.config import Settings
from app.main import create_app
from tests.integration.app.conftest import REPO_ROOT, Api, Stack, eventually, make_item
from tests.integration.identity.test_keycloak import keys_put_back  # noqa: F401  (fixture)
from tests.support.keycloak import KeycloakServer
from tests.support.routes import concrete, every_route

PUBLIC = {"/healthz", "/readyz", "/metrics"}


@pytest.fixture(scope="module")
def secured(stack: Stack, keycloak: KeycloakServer) -> Api:
    return stack.api(
        INVENTORY_AUTH_ISSUER=keycloak.issuer,
        INVENTORY_AUTH_LEEWAY_SECONDS="0",
        INVENTORY_AUTH_JWKS_MIN_REFRESH_SECONDS="1",
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: httpx.Response) -> str:
    return response.headers.get("www-authenticate", "")


def refused(api: Api, token: str, reason: str, path: str = "/api/v1/stock") -> None:
    with api.client() as client:
        response = client.get(path, headers=bearer(token))
    assert response.status_code == 401, response.text
    assert challenge(response).startswith('Bearer error="invalid_token", error_description="')
    assert reason in challenge(response), challenge(response)
    assert response.json()["code"] == "invalid_token"


def test_every_route_needs_a_token_and_writes_need_the_write_scope(
    secured: Api, keycloak: KeycloakServer
) -> None:
    app = create_app(
        Settings(
            database_url="postgresql://postgres@127.0.0.1:9/inventory",
            auth_issuer=keycloak.issuer,
            bench_endpoints=True,
        )
    )
    routes = every_route(app)
    reader = keycloak.client_token("inventory-reader")
    writer = keycloak.client_token("inventory-writer")
    with secured.client(headers=bearer(reader)) as client:
        served = set(client.get("/api/v1/openapi.json").json()["paths"])
    assert served <= {template for _, template in routes}  # the walk covers the real server
    checked = {"read": 0, "write": 0}
    with secured.client() as client:
        for method, template in routes:
            path = concrete(template)
            if template in PUBLIC:
                assert client.request(method, path).status_code == 200, (method, path)
                continue
            anonymous = client.request(method, path)
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            assert challenge(anonymous).startswith('Bearer error="invalid_token"')
            answer = client.request(method, path, headers=bearer(reader))
            if scope_for(method) == WRITE_SCOPE:
                assert answer.status_code == 403, (method, path, answer.text)
                assert challenge(answer).startswith('Bearer error="insufficient_scope"')
                assert f'scope="{WRITE_SCOPE}"' in challenge(answer)
                checked["write"] += 1
            else:  # the read-only token passes; the route itself answers (found or not)
                assert answer.status_code not in (401, 403), (method, path, answer.text)
                refused = client.request(method, path, headers=bearer(writer))
                assert refused.status_code == 403, (method, path, refused.text)
                assert f'scope="{READ_SCOPE}"' in challenge(refused)
                checked["read"] += 1
    assert checked["read"] >= 10, checked
    assert checked["write"] >= 6, checked


def test_a_token_with_both_scopes_reads_and_writes(secured: Api, keycloak: KeycloakServer) -> None:
    with secured.client(headers=bearer(keycloak.client_token("inventory-traffic"))) as client:
        sku = make_item(client)
        assert client.get(f"/api/v1/items/{sku}").status_code == 200


def test_probes_and_metrics_need_no_token_and_the_document_declares_the_scheme(
    secured: Api, keycloak: KeycloakServer
) -> None:
    with secured.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert "http_server_requests_total" in client.get("/metrics").text
        assert client.get("/api/v1/openapi.json").status_code == 401
        reader = bearer(keycloak.client_token("inventory-reader"))
        document = client.get("/api/v1/openapi.json", headers=reader).json()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["paths"]["/api/v1/movements"]["post"]["security"] == [
        {"bearerAuth": [WRITE_SCOPE]}
    ]
    assert document["paths"]["/api/v1/stock"]["get"]["security"] == [{"bearerAuth": [READ_SCOPE]}]


def test_a_missing_or_malformed_token_is_refused(secured: Api) -> None:
    with secured.client() as client:
        assert "a bearer token is required" in challenge(client.get("/api/v1/stock"))
        basic = client.get("/api/v1/stock", auth=("inventory-traffic", "secret"))
        assert basic.status_code == 401
    refused(secured, "garbage", "well-formed")


def test_an_expired_token_is_refused(secured: Api, keycloak: KeycloakServer) -> None:
    token = keycloak.client_token("short-lived")
    with secured.client() as client:
        assert client.get("/api/v1/stock", headers=bearer(token)).status_code == 200
    time.sleep(3)  # the client's tokens live 2 s; the API allows no leeway here
    refused(secured, token, "expired")  # refused although the API had verified it before


def test_a_token_of_another_realm_is_refused(secured: Api, keycloak: KeycloakServer) -> None:
    refused(secured, keycloak.client_token("inventory-reader", realm="other"), "another issuer")


def test_a_token_for_another_audience_is_refused(secured: Api, keycloak: KeycloakServer) -> None:
    refused(secured, keycloak.client_token("controlplane-automation"), "audience")


def _unpadded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_tampered_token_is_refused(secured: Api, keycloak: KeycloakServer) -> None:
    head, payload, signature = keycloak.client_token("inventory-reader").split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    flipped = _unpadded(bytes([raw[0] ^ 1]) + raw[1:])
    refused(secured, f"{head}.{payload}.{flipped}", "signature")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = f"{READ_SCOPE} {WRITE_SCOPE}"  # a reader granting itself writes
    forged = f"{head}.{_unpadded(json.dumps(claims).encode())}.{signature}"
    with secured.client() as client:
        answer = client.post(
            "/api/v1/warehouses", json={"code": "FORGED", "name": "x"}, headers=bearer(forged)
        )
    assert answer.status_code == 401, answer.text
    assert "signature" in challenge(answer)


def test_programs_authenticate_with_client_credentials(
    secured: Api, keycloak: KeycloakServer
) -> None:
    """The client renews its token before it expires (``short-lived``: 2 s tokens)."""
    auth = ClientCredentials(
        issuer=keycloak.issuer,
        client_id="short-lived",
        client_secret=keycloak.client_secret("short-lived"),
    )
    with secured.client(auth=auth) as client:
        assert client.get("/api/v1/stock").status_code == 200
        time.sleep(2.5)
        assert client.get("/api/v1/stock").status_code == 200
    assert auth.issued == 2
    wrong = ClientCredentials(issuer=keycloak.issuer, client_id="short-lived", client_secret="x")
    with pytest.raises(Exception, match="refused client 'short-lived'"):
        wrong.token()


def test_the_traffic_generator_authenticates(
    secured: Api, keycloak: KeycloakServer, tmp_path: Path
) -> None:
    secret = tmp_path / "traffic.secret"
    secret.write_text(keycloak.client_secret("inventory-traffic") + "\n", encoding="utf-8")
    secret.chmod(0o600)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.traffic",
            f"--url={secured.url}",
            "--rate=30",
            "--duration=4",
            "--skus=5",
            f"--issuer={keycloak.issuer}",
            f"--client-secret-file={secret}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    done = re.search(r"done: .*", run.stderr)
    assert done is not None, run.stderr
    codes = {int(c): int(n) for c, n in re.findall(r"(\d{3}):(\d+)", done.group(0))}
    assert codes.get(200, 0) > 10, done.group(0)
    assert 401 not in codes, done.group(0)
    assert 403 not in codes, done.group(0)


def test_without_an_issuer_the_api_says_loudly_that_authentication_is_off(stack: Stack) -> None:
    api = stack.api()
    with api.client() as client:
        assert client.get("/api/v1/stock").status_code == 200
    eventually(
        lambda: "AUTHENTICATION IS OFF" in api.process.log_tail(200),
        timeout=10,
        what="the warning",
    )
    api.process.stop()


@pytest.mark.usefixtures("keys_put_back")  # the session's other servers keep their key
def test_zz_a_key_rotation_is_picked_up_without_a_restart(
    secured: Api, keycloak: KeycloakServer
) -> None:
    """Last in the module: the realm's keys are put back afterwards."""
    old = keycloak.client_token("inventory-reader")
    with secured.client() as client:
        assert client.get("/api/v1/stock", headers=bearer(old)).status_code == 200
    master = secured.master_pid()
    new_kid = keycloak.rotate_keys()
    new = keycloak.client_token("inventory-reader")
    assert json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))["kid"] == new_kid

    def accepted() -> bool:
        with secured.client() as client:
            return client.get("/api/v1/stock", headers=bearer(new)).status_code == 200

    # Every gunicorn worker fetches the new key when it first sees its kid (at most one
    # download per second per worker here): a few requests reach them all.
    for _ in range(6):
        eventually(accepted, timeout=10, interval=0.5, what="a token of the new key accepted")
    assert secured.master_pid() == master  # the same server, not restarted
    # The provider disabled the old key: the API dropped it, and the token it had verified.
    refused(secured, old, "key this API does not know")
