"""How programs calling the inventory API get their tokens: OAuth2 client credentials.

:class:`ClientCredentials` is an ``httpx.Auth`` (sync and async clients alike): it finds the
token endpoint in the issuer's discovery document, asks it for a token with the client id and
secret, keeps the token and asks for a new one before it expires (and once more if the API
answers 401, e.g. after the provider rotated its keys). :class:`ClientAuthSettings` reads the
``INVENTORY_AUTH_*`` variables; with no issuer configured, programs send no token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.auth import DISCOVERY_PATH

#: A token is renewed when this share of its lifetime is left (at most 30 s before expiry).
RENEW_SHARE = 0.2


class TokenRequestFailed(Exception):
    """The provider refused to issue a token (wrong secret, unknown client, ...)."""


class ClientAuthSettings(BaseSettings):
    """``INVENTORY_AUTH_ISSUER`` (shared with the API), ``INVENTORY_AUTH_CLIENT_ID``,
    ``INVENTORY_AUTH_CLIENT_SECRET`` or ``INVENTORY_AUTH_CLIENT_SECRET_FILE``,
    ``INVENTORY_AUTH_CLIENT_SCOPE``, ``INVENTORY_AUTH_TOKEN_URL``."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_AUTH_", frozen=True, extra="ignore")

    issuer: str | None = None
    client_id: str = Field(default="inventory-traffic", min_length=1)
    client_secret: SecretStr | None = None
    #: A file holding the secret (first line); wins over ``client_secret``.
    client_secret_file: Path | None = None
    #: Space-separated scopes to ask for; None: the client's default scopes.
    client_scope: str | None = None
    #: None: ``token_endpoint`` of the issuer's discovery document.
    token_url: str | None = None

    @field_validator("issuer", "token_url", "client_scope")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return None if value in (None, "") else value

    def secret(self) -> str:
        if self.client_secret_file is not None:
            try:
                lines = self.client_secret_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(f"cannot read the client secret file: {exc}") from exc
            if not lines or not lines[0].strip():
                raise ValueError(f"the client secret file {self.client_secret_file} is empty")
            return lines[0].strip()
        if self.client_secret is None:
            raise ValueError(
                "INVENTORY_AUTH_ISSUER is set but the client has no secret: set "
                "INVENTORY_AUTH_CLIENT_SECRET_FILE (or INVENTORY_AUTH_CLIENT_SECRET)"
            )
        return self.client_secret.get_secret_value()

    def credentials(self, *, timeout: float = 10.0) -> ClientCredentials | None:
        """The ``httpx.Auth`` for these settings; None without an issuer (no token sent)."""
        if self.issuer is None:
            return None
        return ClientCredentials(
            issuer=self.issuer,
            client_id=self.client_id,
            client_secret=self.secret(),
            scope=self.client_scope,
            token_url=self.token_url,
            timeout=timeout,
        )


class ClientCredentials(httpx.Auth):
    requires_request_body = True  # a request refused with 401 is sent again with a new token

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        token_url: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.token_url = token_url
        self._timeout = timeout
        self._transport = transport
        self._async_transport = async_transport
        self._token: str | None = None
        self._renew_at = 0.0
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self.issued = 0

    # -- the token ------------------------------------------------------------------------

    def _form(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        return form

    def _discovered(self, document: Any) -> str:
        url = document.get("token_endpoint") if isinstance(document, dict) else None
        if not isinstance(url, str):
            raise TokenRequestFailed(f"{self.issuer}{DISCOVERY_PATH} names no token_endpoint")
        return url

    def _keep(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            raise TokenRequestFailed(
                f"the token endpoint refused client {self.client_id!r}: "
                f"{response.status_code} {response.text[:300]}"
            )
        body = response.json()
        token = body.get("access_token")
        if not isinstance(token, str):
            raise TokenRequestFailed("the token endpoint answered without an access_token")
        lifetime = float(body.get("expires_in", 60))
        self._token = token
        self._renew_at = time.monotonic() + lifetime - min(30.0, lifetime * RENEW_SHARE)
        self.issued += 1
        return token

    def _fresh(self) -> str | None:
        return self._token if time.monotonic() < self._renew_at else None

    def token(self) -> str:
        """A valid access token (cached; renewed before it expires)."""
        with self._thread_lock:
            found = self._fresh()
            if found is not None:
                return found
            with httpx.Client(timeout=self._timeout, transport=self._transport) as client:
                if self.token_url is None:
                    response = client.get(self.issuer + DISCOVERY_PATH)
                    response.raise_for_status()
                    self.token_url = self._discovered(response.json())
                return self._keep(
                    client.post(
                        self.token_url, data=self._form(), auth=(self.client_id, self._secret)
                    )
                )

    async def atoken(self) -> str:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            found = self._fresh()
            if found is not None:
                return found
            async with httpx.AsyncClient(
                timeout=self._timeout, transport=self._async_transport
            ) as client:
                if self.token_url is None:
                    response = await client.get(self.issuer + DISCOVERY_PATH)
                    response.raise_for_status()
                    self.token_url = self._discovered(response.json())
                return self._keep(
                    await client.post(
                        self.token_url, data=self._form(), auth=(self.client_id, self._secret)
                    )
                )

    def forget(self, token: str) -> None:
        """Drop ``token`` (the API refused it): the next request asks for a new one."""
        if self._token == token:
            self._token = None
            self._renew_at = 0.0

    # -- httpx.Auth -------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.forget(token)
            request.headers["Authorization"] = f"Bearer {self.token()}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.atoken()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.forget(token)
            request.headers["Authorization"] = f"Bearer {await self.atoken()}"
            yield request
