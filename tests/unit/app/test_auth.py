"""Token validation with locally generated keys: signature, issuer, audience, expiry, key
rotation, bounded key downloads, the verified-token cache, and the middleware over every route
of the app (no route but the probes and the docs answers without a token)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from pydantic import ValidationError

from app.api.auth import PROBE_PATHS, READ_SCOPE, WRITE_SCOPE, scope_for
from app.core.auth import (
    AuthenticationFailed,
    KeySet,
    ProviderMisconfigured,
    ProviderUnavailable,
    TokenValidator,
)
from app.core.config import Settings
from app.main import create_app
from tests.support.routes import concrete, every_route

ISSUER = "http://127.0.0.1:9/realms/inventory"
JWKS_URL = ISSUER + "/protocol/openid-connect/certs"
AUDIENCE = "inventory-api"
DSN = "postgresql://postgres@127.0.0.1:9/inventory"


class Provider:
    """Keys and a JWKS document, as an identity provider publishes them."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.published: list[str] = []
        self.downloads = 0
        self.down = False
        self.issuer = ISSUER
        self.add_key()

    def add_key(self, *, kind: str = "RSA") -> str:
        kid = uuid.uuid4().hex[:12]
        if kind == "RSA":
            self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        self.published.append(kid)
        return kid

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid in self.published:
            key = self.keys[kid]
            algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else None
            if algorithm is not None:
                entry = json.loads(algorithm.to_jwk(key.public_key()))
                entry["alg"] = "RS256"
            else:
                entry = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
                entry["alg"] = "ES256"
            entry.update(kid=kid, use="sig")
            entries.append(entry)
        # Providers publish encryption keys in the same set: they must be ignored.
        entries.append({"kid": "enc-1", "kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "x"})
        return {"keys": entries}

    async def fetch(self, url: str) -> Any:
        if self.down:
            raise ProviderUnavailable(f"{url}: connection refused")
        if url == ISSUER + "/.well-known/openid-configuration":
            return {"issuer": self.issuer, "jwks_uri": JWKS_URL}
        assert url == JWKS_URL, url
        self.downloads += 1
        return self.jwks()

    def token(
        self,
        *,
        kid: str | None = None,
        scope: str = f"{READ_SCOPE} {WRITE_SCOPE}",
        lifetime: float = 300,
        **claims: Any,
    ) -> str:
        kid = kid or self.published[-1]
        key = self.keys[kid]
        now = time.time()
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": [AUDIENCE, "account"],
            "sub": "service-account",
            "azp": "inventory-traffic",
            "scope": scope,
            "iat": int(now),
            "exp": int(now + lifetime),
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


def validator_for(provider: Provider, **options: Any) -> TokenValidator:
    algorithms = options.pop("algorithms", ["RS256"])
    keys = KeySet(
        issuer=ISSUER,
        fetch=provider.fetch,
        algorithms=algorithms,
        min_refresh_seconds=options.pop("min_refresh_seconds", 5.0),
        max_age_seconds=options.pop("max_age_seconds", 300.0),
    )
    return TokenValidator(
        issuer=ISSUER,
        audience=AUDIENCE,
        keys=keys,
        algorithms=algorithms,
        leeway_seconds=options.pop("leeway_seconds", 0),
        **options,
    )


def refused(validator: TokenValidator, token: str) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        asyncio.run(validator.validate(token))
    return caught.value.description


@pytest.fixture
def provider() -> Provider:
    return Provider()


def test_a_valid_token_gives_its_client_and_scopes(provider: Provider) -> None:
    principal = asyncio.run(validator_for(provider).validate(provider.token()))
    assert principal.client_id == "inventory-traffic"
    assert principal.scopes == {READ_SCOPE, WRITE_SCOPE}


def test_es256_keys_are_accepted_when_configured(provider: Provider) -> None:
    kid = provider.add_key(kind="EC")
    validator = validator_for(provider, algorithms=["RS256", "ES256"])
    assert asyncio.run(validator.validate(provider.token(kid=kid))).scopes


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.token(lifetime=-60), "expired"),
        (lambda p: p.token(nbf=int(time.time()) + 600), "not valid yet"),
        (lambda p: p.token(iss="http://127.0.0.1:9/realms/other"), "another issuer"),
        (lambda p: p.token(aud="controlplane-api"), "audience"),
        (lambda p: p.token(aud=None), "'aud'"),
        (lambda p: p.token(exp=None), "'exp'"),
        (lambda p: "not-a-jwt", "well-formed"),
        (lambda p: "a.b.c", "well-formed"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(provider: Provider, make: Any, reason: str) -> None:
    assert reason in refused(validator_for(provider), make(provider))


def test_a_tampered_payload_or_signature_is_refused(provider: Provider) -> None:
    validator = validator_for(provider)
    head, payload, signature = provider.token(scope=READ_SCOPE).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = f"{READ_SCOPE} {WRITE_SCOPE}"
    assert "signature" in refused(validator, f"{head}.{b64(claims)}.{signature}")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert "signature" in refused(validator, f"{head}.{payload}.{flipped}")


def test_a_token_signed_by_a_foreign_key_with_a_known_kid_is_refused(provider: Provider) -> None:
    kid = provider.published[0]
    stranger = Provider()
    stranger.keys[kid] = stranger.keys.pop(stranger.published[0])
    stranger.published = [kid]
    assert "signature" in refused(validator_for(provider), stranger.token(kid=kid))


def test_unsigned_and_shared_secret_tokens_are_refused(provider: Provider) -> None:
    validator = validator_for(provider)
    kid = provider.published[0]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, "scope": WRITE_SCOPE}
    unsigned = f"{b64({'alg': 'none', 'kid': kid})}.{b64(claims)}."
    assert "algorithm" in refused(validator, unsigned)
    # The classic confusion: the public key used as an HMAC secret.
    public_jwk = json.dumps(provider.jwks()["keys"][0])
    forged = (
        f"{b64({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{b64(claims)}."
        + base64.urlsafe_b64encode(public_jwk.encode()[:32]).rstrip(b"=").decode()
    )
    assert "algorithm" in refused(validator, forged)


def test_a_verified_token_is_served_from_the_cache_until_it_expires(provider: Provider) -> None:
    clock = [time.time()]
    validator = validator_for(provider, clock=lambda: clock[0])
    token = provider.token(lifetime=60)
    first = asyncio.run(validator.validate(token))
    provider.down = True  # no key lookup is needed for a cached token
    assert asyncio.run(validator.validate(token)) is first
    clock[0] += 61
    assert "expired" in refused(validator, token)


def test_the_cache_is_bounded(provider: Provider) -> None:
    validator = validator_for(provider, cache_size=3)
    for _ in range(10):
        asyncio.run(validator.validate(provider.token(jti=uuid.uuid4().hex)))
    assert len(validator._cache) == 3


def test_a_rotated_key_is_picked_up_without_a_restart(provider: Provider) -> None:
    validator = validator_for(provider, min_refresh_seconds=0.1)
    old_token = provider.token()
    asyncio.run(validator.validate(old_token))
    time.sleep(0.15)
    # Rotation: a new key signs from now on, the old one is withdrawn.
    new_kid = provider.add_key()
    provider.published = [new_kid]
    assert asyncio.run(validator.validate(provider.token())).scopes
    assert validator.keys.kids == {new_kid}
    # A token of the withdrawn key is refused again, even though it was cached.
    assert "does not know" in refused(validator, old_token)


def test_unknown_kids_cannot_hammer_the_provider(provider: Provider) -> None:
    validator = validator_for(provider, min_refresh_seconds=60)

    async def attack() -> list[BaseException | Any]:
        await validator.keys.refresh()
        good = provider.token()
        _head, payload, signature = good.split(".")
        forged = []
        for _ in range(200):
            header = {"alg": "RS256", "kid": uuid.uuid4().hex, "typ": "JWT"}
            forged.append(f"{b64(header)}.{payload}.{signature}")
        return await asyncio.gather(
            *(validator.validate(t) for t in forged), return_exceptions=True
        )

    results = asyncio.run(attack())
    assert all(isinstance(r, AuthenticationFailed) for r in results)
    assert provider.downloads <= 2  # the start, and at most one refresh for all 200


def test_an_unreachable_provider_is_not_the_clients_fault(provider: Provider) -> None:
    provider.down = True
    validator = validator_for(provider, min_refresh_seconds=60)
    for _ in range(2):  # the second one is not even allowed to try: still not a 401
        with pytest.raises(ProviderUnavailable):
            asyncio.run(validator.validate(provider.token()))
    provider.down = False
    asyncio.run(validator.keys.refresh())
    assert asyncio.run(validator.validate(provider.token())).scopes


def test_a_discovery_document_of_another_issuer_is_refused(provider: Provider) -> None:
    provider.issuer = "http://127.0.0.1:9/realms/other"
    with pytest.raises(ProviderMisconfigured, match="names the issuer"):
        asyncio.run(validator_for(provider).keys.refresh())


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"auth_issuer": "127.0.0.1:8080/realms/inventory"}, "http(s)://"),
        ({"auth_issuer": "http://h/realms/x?y=1"}, "no query"),
        ({"auth_jwks_url": "file:///etc/keys"}, "http(s)://"),
        ({"auth_algorithms": "HS256"}, "'RS256' or 'ES256'"),
        ({"auth_algorithms": "none"}, "'RS256' or 'ES256'"),
        ({"auth_algorithms": ""}, "at least one algorithm"),
        ({"auth_leeway_seconds": -1}, "greater than or equal"),
    ],
)
def test_bad_auth_settings_are_refused_with_the_reason(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(database_url=DSN, **values)
    assert reason in str(caught.value)


def test_auth_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_DATABASE_URL", DSN)
    monkeypatch.setenv("INVENTORY_AUTH_ISSUER", ISSUER + "/")
    monkeypatch.setenv("INVENTORY_AUTH_ALGORITHMS", "RS256, ES256")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.auth_issuer == ISSUER
    assert settings.auth_algorithms == ("RS256", "ES256")
    assert settings.auth_audience == "inventory-api"


# -- the middleware over the whole app ---------------------------------------------------------


@pytest.fixture
def app_and_provider(provider: Provider) -> tuple[FastAPI, Provider]:
    settings = Settings(database_url=DSN, auth_issuer=ISSUER, bench_endpoints=True)
    return create_app(settings, validator=validator_for(provider)), provider


def call(app: FastAPI, method: str, path: str, token: str | None = None) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(run())


def test_every_route_but_the_probes_needs_a_token_and_its_scope(
    app_and_provider: tuple[FastAPI, Provider],
) -> None:
    app, provider = app_and_provider
    public = set(PROBE_PATHS)
    checked = 0
    for method, template in every_route(app):
        if template in public:
            continue
        path = concrete(template)
        answer = call(app, method, path)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert answer.json()["code"] == "invalid_token"
        needed = scope_for(method)
        other = WRITE_SCOPE if needed == READ_SCOPE else READ_SCOPE
        answer = call(app, method, path, provider.token(scope=other))
        assert answer.status_code == 403, (method, path, answer.text)
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="insufficient_scope"'), challenge
        assert f'scope="{needed}"' in challenge
        checked += 1
    assert checked >= 15  # the walk really covered the API
    # Unknown paths are no way around it either.
    assert call(app, "GET", "/api/v1/no-such-thing").status_code == 401
    assert call(app, "GET", "/healthz").status_code == 200


def test_a_token_with_the_scope_reaches_the_route(
    app_and_provider: tuple[FastAPI, Provider],
) -> None:
    app, provider = app_and_provider
    answer = call(app, "GET", "/api/v1/bench/constant", provider.token(scope=READ_SCOPE))
    assert answer.status_code == 200, answer.text
    expired = call(app, "GET", "/api/v1/bench/constant", provider.token(lifetime=-30))
    assert expired.status_code == 401
    assert 'error_description="the token has expired"' in expired.headers["www-authenticate"]


def test_the_openapi_document_declares_the_bearer_scheme_and_scopes(
    app_and_provider: tuple[FastAPI, Provider],
) -> None:
    app, provider = app_and_provider
    document = call(app, "GET", "/api/v1/openapi.json", provider.token()).json()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    stock = document["paths"]["/api/v1/stock/{sku}"]["get"]
    assert stock["security"] == [{"bearerAuth": [READ_SCOPE]}]
    assert {"401", "403"} <= set(stock["responses"])
    movement = document["paths"]["/api/v1/movements"]["post"]
    assert movement["security"] == [{"bearerAuth": [WRITE_SCOPE]}]
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_docs_can_be_opened(provider: Provider) -> None:
    settings = Settings(database_url=DSN, auth_issuer=ISSUER, auth_public_docs=True)
    app = create_app(settings, validator=validator_for(provider))
    assert call(app, "GET", "/api/v1/openapi.json").status_code == 200
    assert call(app, "GET", "/api/v1/docs").status_code == 200
    assert call(app, "GET", "/api/v1/stock").status_code == 401


def test_without_an_issuer_nothing_is_asked_and_the_document_declares_nothing() -> None:
    app = create_app(Settings(database_url=DSN, bench_endpoints=True))
    assert call(app, "GET", "/api/v1/bench/constant").status_code == 200
    document = call(app, "GET", "/api/v1/openapi.json").json()
    assert "securitySchemes" not in document.get("components", {})


def test_a_foreign_issuers_token_never_makes_the_keys_download(provider: Provider) -> None:
    validator = validator_for(provider, min_refresh_seconds=0.1)
    asyncio.run(validator.keys.refresh())
    stranger = Provider()
    foreign = stranger.token(iss="http://127.0.0.1:9/realms/other")
    assert "another issuer" in refused(validator, foreign)
    assert provider.downloads == 1


def test_an_unreachable_provider_answers_503_with_retry_after(
    app_and_provider: tuple[FastAPI, Provider],
) -> None:
    app, provider = app_and_provider
    provider.down = True
    answer = call(app, "GET", "/api/v1/bench/constant", provider.token())
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["code"] == "identity_provider_unavailable"
