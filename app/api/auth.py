"""Bearer-token authentication of every route but the probes, as a plain ASGI middleware.

It wraps the whole application, so a route added later is protected without doing anything: a
request is let through only with a valid token carrying the scope of its method — reads (GET,
HEAD, OPTIONS) need ``inventory:read``, every other method ``inventory:write``. Answers follow
RFC 6750: 401 ``invalid_token`` (no token, or a token that is malformed, expired, tampered with,
from another issuer or for another audience), 403 ``insufficient_scope``, both in the API's
error shape ``{"code", "detail"}`` with a ``WWW-Authenticate`` header.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.auth import AuthenticationFailed, ProviderUnavailable, TokenValidator

log = logging.getLogger(__name__)

READ_SCOPE = "inventory:read"
WRITE_SCOPE = "inventory:write"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Reachable without a token: liveness, readiness, the Prometheus scrape.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

SECURITY_SCHEME = "bearerAuth"

#: Seconds a client should wait when the provider's keys cannot be fetched.
PROVIDER_RETRY_AFTER = 5


def scope_for(method: str) -> str:
    return READ_SCOPE if method.upper() in READ_METHODS else WRITE_SCOPE


def _quoted(text: str) -> str:
    """A quoted-string value of WWW-Authenticate (no quote, backslash or control character)."""
    return "".join(c for c in text if c not in '"\\' and c.isprintable())


class BearerAuth:
    def __init__(
        self, app: ASGIApp, *, validator: TokenValidator, public_paths: Iterable[str]
    ) -> None:
        self.app = app
        self.validator = validator
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                kind, _, credentials = value.decode("latin-1").partition(" ")
                if kind.lower() == "bearer" and credentials.strip():
                    token = credentials.strip()
                break
        if token is None:
            await _refuse(send, 401, "invalid_token", "a bearer token is required")
            return
        try:
            principal = await self.validator.validate(token)
        except AuthenticationFailed as exc:
            await _refuse(send, 401, "invalid_token", exc.description)
            return
        except ProviderUnavailable as exc:
            log.warning("cannot verify a token: %s", exc)
            await _unavailable(send)
            return
        needed = scope_for(scope["method"])
        if needed not in principal.scopes:
            await _refuse(
                send,
                403,
                "insufficient_scope",
                f"{scope['method']} needs the scope {needed}",
                needed=needed,
            )
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def _send_json(
    send: Send, status: int, body: dict[str, str], headers: list[tuple[bytes, bytes]]
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _refuse(
    send: Send, status: int, error: str, description: str, *, needed: str | None = None
) -> None:
    challenge = f'Bearer error="{error}", error_description="{_quoted(description)}"'
    if needed is not None:
        challenge += f', scope="{needed}"'
    await _send_json(
        send,
        status,
        {"code": error, "detail": description},
        [(b"www-authenticate", challenge.encode("latin-1", "replace"))],
    )


async def _unavailable(send: Send) -> None:
    await _send_json(
        send,
        503,
        {
            "code": "identity_provider_unavailable",
            "detail": "the identity provider's signing keys cannot be fetched; retry later",
        },
        [(b"retry-after", str(PROVIDER_RETRY_AFTER).encode())],
    )


def public_paths(app: FastAPI, *, public_docs: bool) -> frozenset[str]:
    paths = set(PROBE_PATHS)
    if public_docs:
        paths.update(
            p for p in (app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url) if p
        )
    return frozenset(paths)


def declare_security(app: FastAPI, *, issuer: str, public: frozenset[str]) -> None:
    """The OpenAPI document declares the bearer scheme, the scope of each operation and the
    401 / 403 answers."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                f"An access token of {issuer} with audience and scopes of this API: "
                f"{READ_SCOPE} for reads, {WRITE_SCOPE} for writes (OAuth2 client "
                "credentials for programs)."
            ),
        }
        has_error_body = "ErrorBody" in components.get("schemas", {})
        content = (
            {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            if has_error_body
            else {}
        )
        for path, operations in schema.get("paths", {}).items():
            if path in public:
                continue
            for method, operation in operations.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                needed = scope_for(method)
                operation["security"] = [{SECURITY_SCHEME: [needed]}]
                responses = operation["responses"]
                responses.setdefault(
                    "401",
                    {
                        "description": "No token, or an invalid one (WWW-Authenticate: Bearer "
                        'error="invalid_token")',
                        "content": content,
                    },
                )
                responses.setdefault(
                    "403",
                    {
                        "description": f"The token lacks the scope {needed} "
                        '(error="insufficient_scope")',
                        "content": content,
                    },
                )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
