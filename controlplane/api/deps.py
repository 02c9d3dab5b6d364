"""FastAPI dependencies and their ``Annotated`` aliases (``ReaderDep``, ``CurrentViewer``, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from controlplane.core.config import ControlPlaneSettings, IdentitySettings
from controlplane.core.oidc import (
    AccessTokenVerifier,
    ProviderMetadata,
    ProviderUnavailable,
    SigningKeys,
    TokenRejected,
)
from controlplane.core.security import (
    TOKEN_PREFIX,
    Role,
    passed_mfa,
    role_of_groups,
    role_with_mfa,
)
from controlplane.core.validation import NO_NUL
from controlplane.orchestrator.registry import Orchestration
from controlplane.runtime import DatabaseOperations, Runtime
from controlplane.store.tokens import authenticate

__all__ = [
    "CurrentAdmin",
    "CurrentOperator",
    "CurrentViewer",
    "OrchestrationDep",
    "Principal",
    "ReaderDep",
    "RuntimeDep",
    "SettingsDep",
    "SloIdPath",
    "WriterDep",
    "access_token_verifier",
    "database_operations",
    "require_role",
]

api_token = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API token (`controlplane token create --name N --role viewer|operator|admin`)"
    " or an access token of the identity provider (CONTROLPLANE_OIDC_ISSUER, audience "
    "CONTROLPLANE_OIDC_AUDIENCE).",
)

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}

#: An SLO id in a path: its name, or ``<service>:<name>`` (no NUL: the store compares it).
SloIdPath = Annotated[str, Path(max_length=200, pattern=NO_NUL, description="The SLO's id")]


# The small dependencies are ``async``: FastAPI runs a plain ``def`` dependency in its thread
# pool, a thread hop per request for an attribute read.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> ControlPlaneSettings:
    return runtime.settings


SettingsDep = Annotated[ControlPlaneSettings, Depends(get_settings)]


async def get_orchestration(runtime: RuntimeDep) -> Orchestration | None:
    """The runtime's orchestrator (None: ``CONTROLPLANE_ORCHESTRATOR=none``)."""
    return runtime.orchestration


OrchestrationDep = Annotated[Orchestration | None, Depends(get_orchestration)]


def database_operations(runtime: Runtime) -> DatabaseOperations:
    """The action engine's database operations (drills, switchovers on request); 409 when the
    engine does not run in this process. Called in the route, after its body is validated."""
    if runtime.database_operations is None:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail="the action engine does not run in this process "
            "(controlplane serve with CONTROLPLANE_ACTIONS_ENABLED=true runs it)",
        )
    return runtime.database_operations


def reader_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.database.reader() as session:
        yield session


def writer_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.database.writer() as session:
        yield session


ReaderDep = Annotated[Session, Depends(reader_session)]
WriterDep = Annotated[Session, Depends(writer_session)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API token (its name) or a person or program of the identity provider
    (``subject``, ``username``, ``full_name``); ``role`` is None for a person whose groups give
    none (every route then answers 403)."""

    name: str
    role: Role | None
    kind: Literal["token", "oidc"] = "token"
    subject: str | None = None
    username: str | None = None
    full_name: str | None = None
    issuer: str | None = None
    client: str | None = None
    #: A provider token: whether its ``amr`` names a second factor; None for an API token.
    second_factor: bool | None = None
    #: A provider token: the role its groups give, before the second-factor rule
    #: (``CONTROLPLANE_OIDC_MFA_ROLE``) lowered it to ``role``.
    group_role: Role | None = None

    @property
    def actor(self) -> str:
        """The audit log's actor for an action asked for by this caller."""
        return f"operator:{self.name}"

    def evidence(self) -> dict[str, Any]:
        """Who asked, as audit evidence: the token's name, or the provider's subject and
        names (and the client the person signed in through)."""
        if self.kind == "token":
            return {"kind": "api-token", "token": self.name}
        return {
            "kind": "oidc",
            "issuer": self.issuer,
            "subject": self.subject,
            "preferred_username": self.username,
            "name": self.full_name,
            "client": self.client,
        }


def access_token_verifier(settings: IdentitySettings) -> AccessTokenVerifier | None:
    """The verifier of the provider's access tokens; None without ``CONTROLPLANE_OIDC_ISSUER``.
    Nothing is read from the provider before the first token arrives."""
    if settings.oidc_issuer is None:
        return None
    http = httpx.Client(timeout=settings.oidc_timeout_seconds)
    metadata = ProviderMetadata(settings.oidc_issuer, http=http)
    keys = SigningKeys(
        metadata=metadata,
        http=http,
        min_refresh_seconds=settings.oidc_jwks_min_refresh_seconds,
        max_age_seconds=settings.oidc_jwks_max_age_seconds,
    )
    return AccessTokenVerifier(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        keys=keys,
        leeway_seconds=settings.oidc_leeway_seconds,
    )


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers=UNAUTHORIZED_HEADERS)


def _oidc_principal(request: Request, runtime: Runtime, token: str) -> Principal:
    verifier: AccessTokenVerifier | None = getattr(request.app.state, "verifier", None)
    if verifier is None:
        raise _unauthorized("unknown or revoked token")
    try:
        identity = verifier.verify(token)
    except TokenRejected as exc:
        raise _unauthorized(f"access token refused: {exc}") from exc
    except ProviderUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"cannot check the access token: identity provider unavailable: {exc}",
        ) from exc
    settings = runtime.settings.identity
    group_role = role_of_groups(list(identity.groups), settings.oidc_role_groups)
    amr = identity.claims.get("amr")
    role = role_with_mfa(
        group_role, amr, mfa_role=settings.oidc_mfa_role, methods=settings.oidc_mfa_methods
    )
    return Principal(
        name=identity.label,
        role=role,
        kind="oidc",
        subject=identity.subject,
        username=identity.username,
        full_name=identity.name,
        issuer=identity.issuer,
        client=identity.client,
        second_factor=passed_mfa(amr, settings.oidc_mfa_methods),
        group_role=group_role,
    )


def current_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(api_token)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    if not credentials.credentials.startswith(TOKEN_PREFIX):
        return _oidc_principal(request, runtime, credentials.credentials)
    with runtime.database.reader() as session:
        token = authenticate(session, secret=credentials.credentials)
    if token is None:
        raise _unauthorized("unknown or revoked token")
    return Principal(name=token.name, role=token.role)


def require_role(role: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets through tokens whose role includes ``role`` (else 403)."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        who = f"token {principal.name!r}" if principal.kind == "token" else principal.name
        if principal.role is not None and principal.role.allows(role):
            return principal
        detail = f"this route needs the {role.value} role; {who} "
        if principal.group_role is not None and principal.group_role.allows(role):
            held = principal.role.value if principal.role is not None else "no role"
            detail += (
                f"is {held}: their groups give {principal.group_role.value}, which needs a "
                "second factor, and this token's amr names none (sign in again with the "
                "one-time code; CONTROLPLANE_OIDC_MFA_ROLE)"
            )
        elif principal.role is None:
            detail += (
                "has no role: none of their groups is mapped to one (CONTROLPLANE_OIDC_ROLE_GROUPS)"
            )
        else:
            detail += f"is {principal.role.value}"
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail)

    check.__name__ = f"require_{role.value}"
    return check


CurrentViewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
CurrentOperator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
CurrentAdmin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
