"""The control plane's client credentials for the inventory API: one token for many requests,
a new one shortly before it expires and after a 401, for sync and async httpx clients; a refused
client is an error that says so."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.core.config import IdentitySettings
from controlplane.core.oidc import ClientCredentials, ProviderUnavailable, inventory_api_auth
from tests.support.token_issuer import TokenIssuer, token_issuer

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Iterator[TokenIssuer]:
    with token_issuer() as running:
        running.clients["controlplane-probe"] = "probe-secret"
        yield running


def test_one_token_serves_many_requests_and_is_renewed_before_it_expires(
    issuer: TokenIssuer,
) -> None:
    clock = Clock()
    auth = ClientCredentials(
        token_url=f"{issuer.issuer}/token",
        client_id="controlplane-probe",
        client_secret="probe-secret",
        clock=clock,
    )
    with httpx.Client(auth=auth, timeout=5) as client:
        for _ in range(5):
            assert client.get(f"{issuer.url}/protected").status_code == 200
        assert len(issuer.issued) == 1
        clock.now += 300 - 30  # 30 s before the 300 s token expires
        assert client.get(f"{issuer.url}/protected").status_code == 200
        assert len(issuer.issued) == 2
        issuer.accepted.clear()  # the API no longer takes the token (revoked, rotated keys)
        assert client.get(f"{issuer.url}/protected").status_code == 200
        assert len(issuer.issued) == 3


def test_async_clients_share_the_token(issuer: TokenIssuer) -> None:
    auth = ClientCredentials(
        token_url=f"{issuer.issuer}/token",
        client_id="controlplane-probe",
        client_secret="probe-secret",
    )

    async def reads() -> list[int]:
        async with httpx.AsyncClient(auth=auth, timeout=5) as client:
            first = await client.get(f"{issuer.url}/protected")
            rest = await asyncio.gather(*(client.get(f"{issuer.url}/protected") for _ in range(5)))
            return [first.status_code, *(r.status_code for r in rest)]

    assert asyncio.run(reads()) == [200] * 6
    assert len(issuer.issued) == 1


def test_the_settings_build_it_from_the_issuer_and_a_refused_secret_says_so(
    issuer: TokenIssuer, tmp_path: Path
) -> None:
    assert inventory_api_auth(IdentitySettings()) is None  # no secret file: no token
    secret = tmp_path / "probe.secret"
    secret.write_text("wrong-secret\n", encoding="utf-8")
    auth = inventory_api_auth(
        IdentitySettings(oidc_issuer=issuer.issuer, inventory_client_secret_file=secret)
    )
    assert auth is not None
    assert auth.token_url == f"{issuer.issuer}/token"
    with (
        httpx.Client(auth=auth, timeout=5) as client,
        pytest.raises(ProviderUnavailable, match="HTTP 401"),
    ):
        client.get(f"{issuer.url}/protected")
    with pytest.raises(ValueError, match="CONTROLPLANE_OIDC_ISSUER"):
        IdentitySettings(inventory_client_secret_file=secret)
