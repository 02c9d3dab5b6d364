"""The control plane API: app factory, extensions and background services.

``create_app(settings)`` builds the FastAPI application under ``/api/v1``. Every route needs at
least a viewer token; packages above the control plane (``alerts``) add their routers as
:class:`ApiExtension` objects, so this package never imports them (the import-linter layers).
Long-running parts (the evaluation scheduler) are passed as ``services``: started after the
store and the leader election, stopped before them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.types import ASGIApp, Receive, Scope, Send

from controlplane.api.deps import access_token_verifier, require_role
from controlplane.api.errors import ERROR_RESPONSES, add_error_handler
from controlplane.api.routes import (
    actions,
    alerts,
    audit,
    backups,
    findings,
    health,
    slos,
    targets,
    tokens,
    traces,
)
from controlplane.api.routes import metrics as metrics_route
from controlplane.core.config import ControlPlaneSettings
from controlplane.core.errors import ControlPlaneError
from controlplane.core.security import Role
from controlplane.evaluation.metrics import ControlPlaneMetrics
from controlplane.runtime import Runtime

__all__ = [
    "API_PREFIX",
    "EXTENSIONS_ENTRY_POINT_GROUP",
    "ApiExtension",
    "BackgroundService",
    "ControlPlaneAPI",
    "MissingExtension",
    "create_app",
    "installed_extensions",
]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
API_VERSION = "1.0.0"
#: Entry-point group through which installed packages offer API extensions: each entry point
#: names a callable ``(settings) -> Sequence[ApiExtension]``, e.g.
#: ``alerts = "alerts.wiring:api_extensions"``.
EXTENSIONS_ENTRY_POINT_GROUP = "controlplane.api_extensions"


@dataclass(frozen=True)
class ApiExtension:
    """A router a package above the control plane mounts under ``/api/v1``.

    The router brings its own authentication (the control plane's viewer requirement is not
    added to it). ``openapi_schemas`` are added to the OpenAPI components (for bodies the router
    reads itself). ``endpoints`` maps ``(method, path under /api/v1)`` to a plain ASGI app that
    answers those requests ahead of the application's middleware and routing (for a hot route:
    no request objects, no dependency solving). Such an endpoint answers every error itself
    (an unexpected one with a logged 500); the router's route of the same path documents it.
    ``on_shutdown`` is called when the app stops, after its background services and before the
    runtime closes the store (for the extension's own threads; the store closes even when it
    raises).
    """

    name: str
    router: APIRouter
    openapi_schemas: Mapping[str, Any] = field(default_factory=dict)
    endpoints: Mapping[tuple[str, str], ASGIApp] = field(default_factory=dict)
    on_shutdown: Callable[[], None] | None = None


class MissingExtension(ControlPlaneError):
    """An API extension the settings require is offered by no installed package."""


def installed_extensions(settings: ControlPlaneSettings) -> list[ApiExtension]:
    """The extensions offered by installed packages (entry points of
    :data:`EXTENSIONS_ENTRY_POINT_GROUP`), for a composition root inside this package such as
    ``controlplane serve``. A plugin that fails to load or returns something else fails the start,
    and so does an extension of ``settings.required_extensions`` that none offers
    (:class:`MissingExtension`): a route the operator counts on is never silently absent.
    """
    found: list[ApiExtension] = []
    for entry_point in sorted(entry_points(group=EXTENSIONS_ENTRY_POINT_GROUP), key=str):
        provide = entry_point.load()
        extensions = provide(settings)
        for extension in extensions:
            if not isinstance(extension, ApiExtension):
                raise TypeError(f"{entry_point.value} returned {extension!r}, not an ApiExtension")
            found.append(extension)
    names = {extension.name for extension in found}
    missing = [name for name in settings.api.required_extensions if name not in names]
    if missing:
        raise MissingExtension(
            f"API extension {', '.join(missing)} is required (CONTROLPLANE_REQUIRED_EXTENSIONS)"
            f" but no installed package offers it (installed: {', '.join(sorted(names)) or 'none'}"
            f"); install the package that provides it (the webhook: the project's `alerts`"
            f" package) or take it out of CONTROLPLANE_REQUIRED_EXTENSIONS"
        )
    return found


class BackgroundService(Protocol):
    """Something that runs beside the API (e.g. the evaluation scheduler)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


class ControlPlaneAPI(FastAPI):
    """FastAPI with the extensions' schemas merged into the OpenAPI document, and their
    endpoints served ahead of everything else (see :class:`ApiExtension`)."""

    extension_schemas: dict[str, Any]
    endpoints: dict[tuple[str, str], ASGIApp]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.endpoints.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self  # as Starlette sets it: the endpoint finds app.state there
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(self.extension_schemas)
        return super().openapi()


def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable for %s: %s", request.url.path, exc)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": "the control plane store is unavailable"},
    )


def create_app(
    settings: ControlPlaneSettings,
    *,
    extensions: Sequence[ApiExtension] = (),
    services: Sequence[BackgroundService] = (),
    runtime: Runtime | None = None,
    metrics: ControlPlaneMetrics | None = None,
) -> ControlPlaneAPI:
    """Build the API. ``runtime`` defaults to one built from ``settings`` (store + election);
    ``metrics`` (served on ``/metrics``) to an empty set of self-metrics."""
    the_runtime = runtime or Runtime.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        the_runtime.loop_watch.attach(asyncio.get_running_loop())
        await run_in_threadpool(the_runtime.start)
        started: list[BackgroundService] = []
        try:
            for service in services:
                await run_in_threadpool(service.start)
                started.append(service)
            yield
        finally:
            for service in reversed(started):
                await run_in_threadpool(service.stop)
            try:
                for extension in extensions:
                    if extension.on_shutdown is not None:
                        await run_in_threadpool(extension.on_shutdown)
            finally:  # a failing hook is raised, and the store still closes
                await run_in_threadpool(the_runtime.stop)
                the_runtime.loop_watch.detach()

    app = ControlPlaneAPI(
        title="Inventory SLO control plane",
        version=API_VERSION,
        summary="SLO status, findings, alerts and the audit log of the inventory control plane.",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry spans and metrics: the control plane exports its metrics
        # on /metrics and sets no OpenTelemetry provider, so they are off (and cost no request
        # a look at the environment).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.extension_schemas = {}
    app.endpoints = {}
    app.state.runtime = the_runtime
    app.state.verifier = access_token_verifier(settings.identity)
    app.state.metrics = metrics or ControlPlaneMetrics()
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable)
    add_error_handler(app)

    viewer = [Depends(require_role(Role.VIEWER))]
    api = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
    # Extensions first: a request is matched against the routes in order, and the webhook
    # receiver is the busiest route (its paths are its own, so the order changes no answer).
    for extension in extensions:
        api.include_router(extension.router)
        app.extension_schemas.update(extension.openapi_schemas)
        for (method, path), endpoint in extension.endpoints.items():
            app.endpoints[(method.upper(), API_PREFIX + path)] = endpoint
    for module in (
        health,
        slos,
        findings,
        alerts,
        audit,
        tokens,
        actions,
        targets,
        backups,
        traces,
    ):
        api.include_router(module.router, dependencies=viewer)

    @api.get("/openapi.json", include_in_schema=False, dependencies=viewer)
    def openapi_document() -> dict[str, Any]:
        return app.openapi()

    app.include_router(api)
    app.include_router(metrics_route.router, dependencies=viewer, responses=ERROR_RESPONSES)
    return app
