"""FastAPI dependencies and their ``Annotated`` aliases (``ReaderDep``, ``CurrentViewer``, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from controlplane.core.config import ControlPlaneSettings
from controlplane.core.security import Role
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
    "database_operations",
    "require_role",
]

api_token = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API token (`controlplane token create --name N --role viewer|operator|admin`).",
)

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}

#: An SLO id in a path: its name, or ``<service>:<name>`` (no NUL: the store compares it).
SloIdPath = Annotated[str, Path(max_length=200, pattern=NO_NUL, description="The SLO's id")]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> ControlPlaneSettings:
    return runtime.settings


SettingsDep = Annotated[ControlPlaneSettings, Depends(get_settings)]


def get_orchestration(runtime: RuntimeDep) -> Orchestration | None:
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
    """Who is calling: the token's name and role."""

    name: str
    role: Role


def current_principal(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(api_token)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers=UNAUTHORIZED_HEADERS,
        )
    with runtime.database.reader() as session:
        token = authenticate(session, secret=credentials.credentials)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked token",
            headers=UNAUTHORIZED_HEADERS,
        )
    return Principal(name=token.name, role=token.role)


def require_role(role: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets through tokens whose role includes ``role`` (else 403)."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.role.allows(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this route needs the {role.value} role; token {principal.name!r} is "
                f"{principal.role.value}",
            )
        return principal

    check.__name__ = f"require_{role.value}"
    return check


CurrentViewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
CurrentOperator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
CurrentAdmin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
