"""OpenID Connect: the provider's metadata, its signing keys, access-token checks and a client
credentials token source.

* :class:`ProviderMetadata`: ``<issuer>/.well-known/openid-configuration``, read once and kept.
* :class:`SigningKeys`: the provider's JWKS, kept; read again when a token names a key it does
  not hold (key rotation), at most once per ``min_refresh_seconds`` (so tokens with made-up key
  ids cannot make the control plane hammer the provider), and when older than ``max_age``.
* :class:`AccessTokenVerifier`: signature against those keys, issuer, audience, expiry; every
  refusal is a :class:`TokenRejected` whose message says why (expired, another issuer, wrong
  audience, bad signature).
* :class:`ClientCredentials`: an ``httpx.Auth`` that gets an access token with the client
  credentials grant, keeps it until shortly before it expires and gets a new one (also after a
  401), for sync and async httpx clients alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

from controlplane.core.config import IdentitySettings
from controlplane.core.errors import ControlPlaneError

__all__ = [
    "AccessTokenVerifier",
    "ClientCredentials",
    "Identity",
    "ProviderMetadata",
    "ProviderUnavailable",
    "SigningKeys",
    "TokenRejected",
    "inventory_api_auth",
]

#: Signature algorithms accepted (asymmetric only: the provider's public keys verify them).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class TokenRejected(ControlPlaneError):
    """An access token that does not prove who calls; the message says why."""


class ProviderUnavailable(ControlPlaneError):
    """The identity provider (its metadata, keys or token endpoint) cannot be read."""


@dataclass(frozen=True)
class Identity:
    """Who an access token names: the subject and what the provider says about them."""

    issuer: str
    subject: str
    username: str | None
    name: str | None
    groups: tuple[str, ...]
    #: The client the token was issued to (``azp``).
    client: str | None
    claims: dict[str, Any] = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        """How the person is named in the audit log and on the console."""
        return self.username or self.name or self.subject


def _get_json(http: httpx.Client, url: str, what: str) -> dict[str, Any]:
    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"{what} {url}: {exc}") from exc
    if response.status_code != 200:
        raise ProviderUnavailable(f"{what} {url}: HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError as exc:
        raise ProviderUnavailable(f"{what} {url}: not JSON") from exc
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{what} {url}: not a JSON object")
    return document


class ProviderMetadata:
    """The provider's discovery document, read on first use and kept."""

    def __init__(self, issuer: str, *, http: httpx.Client) -> None:
        self.issuer = issuer.rstrip("/")
        self._http = http
        self._lock = threading.Lock()
        self._document: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None:
                found = _get_json(self._http, self.url, "OpenID configuration")
                if str(found.get("issuer", "")).rstrip("/") != self.issuer:
                    raise ProviderUnavailable(
                        f"{self.url} names issuer {found.get('issuer')!r}, not {self.issuer!r}"
                    )
                self._document = found
            return self._document

    def endpoint(self, name: str) -> str:
        value = self.document().get(name)
        if not isinstance(value, str) or not value:
            raise ProviderUnavailable(f"{self.url} has no {name}")
        return value


class SigningKeys:
    """The provider's public keys by key id, refreshed on an unknown key id (bounded rate)."""

    def __init__(
        self,
        *,
        jwks_url: str | None = None,
        metadata: ProviderMetadata | None = None,
        http: httpx.Client,
        min_refresh_seconds: float = 10.0,
        max_age_seconds: float = 3600.0,
        clock: Any = time.monotonic,
    ) -> None:
        if jwks_url is None and metadata is None:
            raise ValueError("give jwks_url or metadata")
        self._jwks_url = jwks_url
        self._metadata = metadata
        self._http = http
        self.min_refresh_seconds = min_refresh_seconds
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        #: How many times the key set was read (a figure for tests and logs).
        self.fetches = 0

    def _url(self) -> str:
        if self._jwks_url is None:
            assert self._metadata is not None
            self._jwks_url = self._metadata.endpoint("jwks_uri")
        return self._jwks_url

    def _fetch(self) -> None:
        document = _get_json(self._http, self._url(), "JWKS")
        try:
            key_set = PyJWKSet.from_dict(document)
        except jwt.PyJWTError as exc:
            raise ProviderUnavailable(f"JWKS {self._url()}: {exc}") from exc
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        self._fetched_at = self._clock()
        self.fetches += 1

    def key(self, kid: str) -> PyJWK:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.max_age_seconds
            if stale or (
                kid not in self._keys
                and self._fetched_at is not None
                and now - self._fetched_at >= self.min_refresh_seconds
            ):
                self._fetch()
            found = self._keys.get(kid)
        if found is None:
            raise TokenRejected(f"signed with key {kid!r}, which the provider does not publish")
        return found


class AccessTokenVerifier:
    """Checks an access token: signature (provider's keys), issuer, audience, expiry."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: SigningKeys,
        leeway_seconds: float = 0.0,
        algorithms: Sequence[str] = ALGORITHMS,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.keys = keys
        self.leeway_seconds = leeway_seconds
        self.algorithms = list(algorithms)

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"not a signed JWT: {exc}") from exc
        # Another issuer's token is named as such before its key id is looked up (its keys are
        # not ours, and it must not make us read our provider's keys again).
        issuer = str(unverified.get("iss", "")).rstrip("/")
        if issuer != self.issuer:
            raise TokenRejected(f"issued by {unverified.get('iss')!r}, not by {self.issuer!r}")
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise TokenRejected(f"signature algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("the token names no signing key (kid)")
        key = self.keys.key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=unverified.get("iss"),
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected(f"expired at {unverified.get('exp')} (unix time)") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected(
                f"audience {unverified.get('aud')!r} does not include {self.audience!r}"
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("the signature does not verify (tampered token?)") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(str(exc)) from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"invalid token: {exc}") from exc
        groups = claims.get("groups")
        return Identity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            username=_text(claims.get("preferred_username")),
            name=_text(claims.get("name")),
            groups=tuple(str(g).lstrip("/") for g in groups) if isinstance(groups, list) else (),
            client=_text(claims.get("azp")),
            claims=claims,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class ClientCredentials(httpx.Auth):
    """Bearer tokens from the client credentials grant, kept until ``renew_before_seconds``
    before they expire; a 401 answer gets a new token and one retry.

    The token request is made through the same httpx client as the request it authorises, so
    this works with ``httpx.Client`` and ``httpx.AsyncClient``.
    """

    requires_response_body = True

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        renew_before_seconds: float = 30.0,
        clock: Any = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.renew_before_seconds = renew_before_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        #: How many tokens were requested (a figure for tests and logs).
        self.issued = 0

    def _current(self) -> str | None:
        with self._lock:
            if self._token is not None and self._clock() < self._expires_at:
                return self._token
            return None

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        return httpx.Request("POST", self.token_url, data=form)

    def _keep(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            raise ProviderUnavailable(
                f"client credentials for {self.client_id!r} at {self.token_url}: "
                f"HTTP {response.status_code} {response.text[:200]}"
            )
        answer = response.json()
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderUnavailable(f"{self.token_url} answered no access_token")
        lifetime = float(answer.get("expires_in") or 60)
        with self._lock:
            self._token = token
            self._expires_at = self._clock() + max(1.0, lifetime - self.renew_before_seconds)
            self.issued += 1
        return token

    def _basic(self, request: httpx.Request) -> httpx.Request:
        # httpx applies ``auth=`` of a Request only through a client: set the header here.
        flow = httpx.BasicAuth(self.client_id, self._secret).auth_flow(request)
        return next(flow)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._current()
        if token is None:
            token = self._keep((yield self._basic(self._token_request())))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = self._keep((yield self._basic(self._token_request())))
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


def inventory_api_auth(
    settings: IdentitySettings, *, timeout: float | None = None
) -> ClientCredentials | None:
    """How the control plane authenticates to the inventory API: client credentials of
    ``CONTROLPLANE_INVENTORY_CLIENT_ID``, or None when no client secret file is configured.
    The token endpoint is ``CONTROLPLANE_INVENTORY_TOKEN_URL``, else the issuer's (discovery)."""
    secret = settings.inventory_client_secret()
    if secret is None:
        return None
    token_url = settings.inventory_token_url
    if token_url is None:
        assert settings.oidc_issuer is not None  # the settings refuse a secret without either
        with httpx.Client(timeout=timeout or settings.oidc_timeout_seconds) as http:
            token_url = ProviderMetadata(settings.oidc_issuer, http=http).endpoint("token_endpoint")
    return ClientCredentials(
        token_url=token_url, client_id=settings.inventory_client_id, client_secret=secret
    )
