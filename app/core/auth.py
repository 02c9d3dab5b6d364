"""Validation of the identity provider's access tokens (OAuth2 bearer JWTs), off the network.

- :class:`KeySet` holds the provider's public signing keys (its JSON Web Key Set), decoded once.
  A token naming an unknown key id makes it download the set again — so a key rotation at the
  provider is picked up without a restart — but at most once per ``min_refresh_seconds``, so
  garbage key ids cannot hammer the provider. A set older than ``max_age_seconds`` is refreshed
  in the background (keys the provider withdrew stop being accepted).
- :class:`TokenValidator` checks the signature (asymmetric algorithms only), ``iss``, ``aud``,
  ``exp`` and ``nbf``, and remembers verified tokens (keyed by their full text, never by the
  signature alone: the signature does not make a token's text unique to a lookup) in a bounded
  LRU until they expire. A request with a known token costs a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWKError,
    PyJWTError,
)

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"

#: ``url -> decoded JSON``; raises :class:`ProviderUnavailable` when the provider cannot answer.
Fetch = Callable[[str], Awaitable[Any]]


class AuthenticationFailed(Exception):
    """The request carries no usable token: 401 ``invalid_token``."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class ProviderUnavailable(Exception):
    """The provider's keys are needed and cannot be downloaded: 503."""


class ProviderMisconfigured(Exception):
    """The provider answers, but not as configured (issuer mismatch, no ``jwks_uri``)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called: from a verified token."""

    subject: str
    client_id: str | None
    scopes: frozenset[str]
    expires_at: float
    not_before: float
    kid: str

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], *, kid: str) -> Principal:
        raw = claims.get("scope", "")
        scopes = frozenset(raw.split() if isinstance(raw, str) else map(str, raw or ()))
        client = claims.get("azp") or claims.get("client_id")
        return cls(
            subject=str(claims.get("sub", "")),
            client_id=str(client) if client else None,
            scopes=scopes,
            expires_at=float(claims["exp"]),
            not_before=float(claims.get("nbf", 0)),
            kid=kid,
        )


def http_fetcher(client: httpx.AsyncClient) -> Fetch:
    async def fetch(url: str) -> Any:
        try:
            response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise ProviderUnavailable(f"{url} answered {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"{url} did not answer JSON") from exc

    return fetch


class KeySet:
    def __init__(
        self,
        *,
        issuer: str,
        fetch: Fetch,
        algorithms: Sequence[str],
        jwks_url: str | None = None,
        min_refresh_seconds: float = 5.0,
        max_age_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.algorithms = frozenset(algorithms)
        self._fetch = fetch
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        #: Called with the key ids that disappeared from the set.
        self.on_removed: Callable[[set[str]], None] = lambda kids: None
        self.downloads = 0

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def discover(self) -> str:
        """``jwks_uri`` of the issuer's discovery document (which must name the same issuer)."""
        document = await self._fetch(self.issuer + DISCOVERY_PATH)
        if not isinstance(document, dict):
            raise ProviderMisconfigured(f"{self.issuer}{DISCOVERY_PATH} is not a JSON object")
        named = str(document.get("issuer", "")).rstrip("/")
        if named != self.issuer:
            raise ProviderMisconfigured(
                f"the discovery document of {self.issuer} names the issuer {named!r}: "
                "INVENTORY_AUTH_ISSUER must be exactly the provider's issuer"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise ProviderMisconfigured(f"the discovery document of {self.issuer} has no jwks_uri")
        return jwks_uri

    async def refresh(self) -> None:
        """Download and decode the key set now (one download at a time)."""
        async with self._lock:
            await self._download()

    async def _download(self) -> None:
        self._attempted_at = self._clock()
        if self.jwks_url is None:
            self.jwks_url = await self.discover()
        document = await self._fetch(self.jwks_url)
        self.downloads += 1
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            kid, alg = entry.get("kid"), entry.get("alg")
            if not isinstance(kid, str) or (alg is not None and alg not in self.algorithms):
                continue
            try:
                keys[kid] = jwt.PyJWK(entry)
            except PyJWKError as exc:
                log.warning("signing key %s of %s skipped: %s", kid, self.jwks_url, exc)
        removed = set(self._keys) - set(keys)
        self._keys = keys
        self._loaded_at = self._clock()
        if removed:
            self.on_removed(removed)
        log.info("signing keys of %s: %s", self.issuer, ", ".join(sorted(keys)) or "none")

    async def key(self, kid: str) -> jwt.PyJWK:
        found = self._keys.get(kid)
        if found is not None:
            if self._clock() - self._loaded_at > self._max_age:
                self._refresh_in_background()
            return found
        async with self._lock:
            found = self._keys.get(kid)  # another request may have just downloaded it
            if found is None and self._clock() - self._attempted_at >= self._min_refresh:
                await self._download()
                found = self._keys.get(kid)
        if found is None:
            if self._loaded_at == float("-inf"):  # the provider never answered: not the token
                raise ProviderUnavailable(f"no signing keys of {self.issuer} loaded yet")
            raise AuthenticationFailed("the token is signed with a key this API does not know")
        return found

    def _refresh_in_background(self) -> None:
        if self._background is not None and not self._background.done():
            return
        if self._clock() - self._attempted_at < self._min_refresh:
            return

        async def run() -> None:
            try:
                await self.refresh()
            except (ProviderUnavailable, ProviderMisconfigured) as exc:
                log.warning("refreshing the signing keys of %s failed: %s", self.issuer, exc)

        self._background = asyncio.get_running_loop().create_task(run())

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background


_CLAIM_ERRORS: tuple[tuple[type[PyJWTError], str], ...] = (
    (ExpiredSignatureError, "the token has expired"),
    (ImmatureSignatureError, "the token is not valid yet"),
    (InvalidIssuerError, "the token was issued by another issuer"),
    (InvalidAudienceError, "the token is not meant for this API (audience)"),
    (InvalidSignatureError, "the token's signature is invalid"),
    (InvalidAlgorithmError, "the token's signature algorithm is not accepted"),
)


class TokenValidator:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: KeySet,
        algorithms: Sequence[str],
        leeway_seconds: float = 5.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.algorithms = list(algorithms)
        self.leeway = leeway_seconds
        self.cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        keys.on_removed = self._forget_keys

    def _forget_keys(self, kids: set[str]) -> None:
        for token in [t for t, p in self._cache.items() if p.kid in kids]:
            del self._cache[token]

    async def validate(self, token: str) -> Principal:
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at <= now - self.leeway:
                del self._cache[token]
                raise AuthenticationFailed("the token has expired")
            if cached.not_before > now + self.leeway:
                raise AuthenticationFailed("the token is not valid yet")
            self._cache.move_to_end(token)
            return cached
        principal = await self._verify(token)
        if self.cache_size:
            self._cache[token] = principal
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise AuthenticationFailed("the token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthenticationFailed(
                f"the token's signature algorithm {str(alg)[:20]!r} is not accepted"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationFailed("the token names no signing key (kid)")
        try:  # before any key lookup: a foreign token never makes the key set download again
            claimed = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except PyJWTError:
            raise AuthenticationFailed("the token is not a well-formed JWT") from None
        if claimed != self.issuer:
            raise AuthenticationFailed("the token was issued by another issuer")
        key = await self.keys.key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except MissingRequiredClaimError as exc:
            raise AuthenticationFailed(f"the token has no {exc.claim!r} claim") from None
        except PyJWTError as exc:
            for kind, description in _CLAIM_ERRORS:
                if isinstance(exc, kind):
                    raise AuthenticationFailed(description) from None
            raise AuthenticationFailed("the token is not valid") from None
        return Principal.from_claims(claims, kid=kid)
