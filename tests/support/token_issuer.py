"""A small token issuer for unit tests: a real HTTP server on a loopback port that publishes an
OpenID configuration and a JWKS, and signs access tokens with its RSA keys.

The acceptance tests use the real identity provider (fixture ``keycloak``); this one lets the
unit tests shape tokens Keycloak would never issue (made-up key ids, other algorithms) and count
how often the keys are read.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["TokenIssuer", "token_issuer"]


@dataclass
class TokenIssuer:
    url: str = ""
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    #: Key ids published in the JWKS (a key can sign without being published).
    published: list[str] = field(default_factory=list)
    jwks_reads: int = 0
    #: Client credentials: client id → secret, the tokens handed out, those still accepted by
    #: ``/protected`` (a stand-in for an API that checks them).
    clients: dict[str, str] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    accepted: set[str] = field(default_factory=set)

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/test"

    def add_key(self, *, publish: bool = True) -> str:
        kid = uuid.uuid4().hex[:12]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            jwk = json.loads(RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(
        self,
        *,
        subject: str = "0b6c2f6e-oscar",
        username: str | None = "oscar",
        name: str | None = "Oscar Operator",
        groups: list[str] | None = None,
        audience: str | list[str] = "controlplane-api",
        issuer: str | None = None,
        lifetime: float = 300.0,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + int(lifetime),
            "azp": "inventory-console",
            "groups": groups if groups is not None else ["slo-operators"],
            **claims,
        }
        if username is not None:
            payload["preferred_username"] = username
        if name is not None:
            payload["name"] = name
        signing = kid or self.published[-1]
        return jwt.encode(payload, self.keys[signing], algorithm="RS256", headers={"kid": signing})


@contextmanager
def token_issuer() -> Iterator[TokenIssuer]:
    """A running issuer with one published key, stopped on exit."""
    issuer = TokenIssuer()
    issuer.add_key()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/realms/test/.well-known/openid-configuration":
                body: dict[str, Any] = {
                    "issuer": issuer.issuer,
                    "jwks_uri": f"{issuer.issuer}/certs",
                    "token_endpoint": f"{issuer.issuer}/token",
                    "authorization_endpoint": f"{issuer.issuer}/auth",
                    "end_session_endpoint": f"{issuer.issuer}/logout",
                    "code_challenge_methods_supported": ["S256"],
                }
            elif self.path == "/realms/test/certs":
                issuer.jwks_reads += 1
                body = issuer.jwks()
            elif self.path == "/protected":
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if bearer not in issuer.accepted:
                    self.send_error(401)
                    return
                body = {"ok": True}
            else:
                self.send_error(404)
                return
            self._json(body)

        def do_POST(self) -> None:  # the token endpoint: client credentials, HTTP Basic
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            given = self.headers.get("Authorization", "").removeprefix("Basic ")
            client, _, secret = base64.b64decode(given or "").decode().partition(":")
            if self.path != "/realms/test/token" or form.get("grant_type") != [
                "client_credentials"
            ]:
                self.send_error(400)
                return
            if issuer.clients.get(client) != secret:
                self.send_error(401, "invalid_client")
                return
            token = issuer.token(subject=f"service-account-{client}", azp=client)
            issuer.issued.append(token)
            issuer.accepted.add(token)
            self._json({"access_token": token, "expires_in": 300, "token_type": "Bearer"})

        def _json(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
