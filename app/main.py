"""The app factory. ``create_app(settings)`` builds the FastAPI application; connections, threads
and exporters start in its lifespan (after gunicorn forks a worker), never at import time."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from app.api.auth import BearerAuth, declare_security, public_paths
from app.api.errors import ERROR_RESPONSES, install_error_handlers
from app.api.middleware import RequestTelemetry
from app.api.routes import bench, health, items, movements, reservations, stock, warehouses
from app.core.auth import (
    KeySet,
    ProviderMisconfigured,
    ProviderUnavailable,
    TokenValidator,
    http_fetcher,
)
from app.core.config import Settings
from app.core.container import Container
from app.faults import FaultInjector
from app.telemetry.logs import ElasticsearchShipper, setup_logging
from app.telemetry.metrics import ApiMetrics
from app.telemetry.tracing import make_tracer_provider

API_PREFIX = "/api/v1"

log = logging.getLogger(__name__)


def from_env() -> FastAPI:
    """Factory for a single-process server: ``uvicorn --factory app.main:from_env`` (settings
    from ``INVENTORY_*``). Without gunicorn's multiprocess metrics the request histogram carries
    trace-id exemplars."""
    return create_app(Settings())  # type: ignore[call-arg]  # fields come from the environment


def token_validator(settings: Settings, client: httpx.AsyncClient) -> TokenValidator | None:
    """The validator for ``INVENTORY_AUTH_*`` (None when no issuer is configured)."""
    if settings.auth_issuer is None:
        return None
    keys = KeySet(
        issuer=settings.auth_issuer,
        jwks_url=settings.auth_jwks_url,
        fetch=http_fetcher(client),
        algorithms=settings.auth_algorithms,
        min_refresh_seconds=settings.auth_jwks_min_refresh_seconds,
        max_age_seconds=settings.auth_jwks_max_age_seconds,
    )
    return TokenValidator(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        keys=keys,
        algorithms=settings.auth_algorithms,
        leeway_seconds=settings.auth_leeway_seconds,
        cache_size=settings.auth_token_cache_size,
    )


async def load_signing_keys(validator: TokenValidator) -> None:
    """At start: a provider that answers wrongly (another issuer) stops the start with the
    reason; one that does not answer yet is logged, and its keys are fetched with the first
    token."""
    try:
        await validator.keys.refresh()
    except ProviderUnavailable as exc:
        log.error(
            "the identity provider %s cannot be reached (%s): requests with a token get 503 "
            "until it answers",
            validator.issuer,
            exc,
        )
    except ProviderMisconfigured as exc:
        raise SystemExit(f"INVENTORY_AUTH_ISSUER: {exc}") from exc


def create_app(settings: Settings, *, validator: TokenValidator | None = None) -> FastAPI:
    """``validator`` replaces the one built from the settings (tests with their own keys)."""
    metrics = ApiMetrics(service=settings.service_name)
    auth_http = httpx.AsyncClient(timeout=settings.auth_http_timeout_seconds)
    if validator is None:
        validator = token_validator(settings, auth_http)
    tracer_provider = make_tracer_provider(
        service_name=settings.service_name,
        otlp_endpoint=settings.otlp_endpoint,
        sample_ratio=settings.trace_sample_ratio,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        shipper = None
        if settings.elasticsearch_url is not None:
            shipper = ElasticsearchShipper(
                url=settings.elasticsearch_url,
                capacity=settings.log_buffer_lines,
                flush_interval=settings.log_flush_interval_seconds,
                bulk_max=settings.log_bulk_max_lines,
                on_dropped=metrics.logs.dropped.inc,
                on_shipped=metrics.logs.shipped.inc,
            )
        setup_logging(
            service_name=settings.service_name,
            level=settings.log_level,
            to_stderr=settings.log_to_stderr,
            shipper=shipper,
        )
        container = Container.build(
            settings=settings, metrics=metrics, tracer_provider=tracer_provider, shipper=shipper
        )
        app.state.container = container
        await container.open()
        container.reads.start()
        if container.replica is not None:
            await container.reads.probe()
        if validator is None:
            log.warning(
                "AUTHENTICATION IS OFF: INVENTORY_AUTH_ISSUER is not set, every route answers "
                "without a token",
                extra={"event.action": "start"},
            )
        else:
            await load_signing_keys(validator)
        log.info("inventory API started", extra={"event.action": "start"})
        try:
            yield
        finally:
            log.info("inventory API stopping", extra={"event.action": "stop"})
            if validator is not None:
                await validator.keys.close()
            await auth_http.aclose()
            await container.close()
            if shipper is not None:
                logging.getLogger().removeHandler(shipper)
                shipper.close()

    app = FastAPI(
        **_native_telemetry(tracer_provider),
        title="Inventory API",
        version="1.0.0",
        description=(
            "Warehouses, items (SKU), stock levels, stock movements (queued, applied in batches) "
            "and reservations (applied at once). Errors carry a machine-readable `code` and a "
            "human-readable `detail`."
        ),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for module in (warehouses, items, stock, movements, reservations):
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    if settings.bench_endpoints:
        app.include_router(bench.router, prefix=API_PREFIX)
    app.include_router(health.router)
    if settings.faults_file is not None:  # inside the telemetry: the delay is measured
        app.add_middleware(FaultInjector, path=settings.faults_file)
    if validator is not None:  # inside the telemetry too: refused requests are counted
        public = public_paths(app, public_docs=settings.auth_public_docs)
        app.add_middleware(BearerAuth, validator=validator, public_paths=public)
        declare_security(app, issuer=validator.issuer, public=public)
    app.add_middleware(
        RequestTelemetry,
        metrics=metrics,
        log_requests=settings.access_log,
        routes=route_templates(app),
    )
    if not NATIVE_TELEMETRY:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=tracer_provider,
            excluded_urls=",".join(UNTRACED_PATHS),
            exclude_spans=["receive", "send"],
        )
    return app


#: Probes and scrapes make no spans.
UNTRACED_PATHS = ("/healthz", "/readyz", "/metrics")

#: FastAPI ≥ 0.130 traces requests itself (``FastAPI(telemetry=...)``) and then bypasses the
#: middleware stack the opentelemetry-instrumentation-fastapi package hooks into.
NATIVE_TELEMETRY = "telemetry" in inspect.signature(FastAPI.__init__).parameters


def _native_telemetry(tracer_provider: TracerProvider) -> dict[str, Any]:
    if not NATIVE_TELEMETRY:
        return {}

    def exclude(scope: MutableMapping[str, Any]) -> bool:
        return scope.get("path") in UNTRACED_PATHS

    return {
        "telemetry": {
            "tracer_provider": tracer_provider,
            "tracing": True,
            "metrics": False,  # Prometheus metrics come from RequestTelemetry
            "logs": False,  # ECS logs come from the logging module
            "operation_spans": False,  # one server span per request, plus DB and Redis spans
            "auto_configure": False,
            "exclude": exclude,
        }
    }


def route_templates(app: FastAPI) -> dict[Any, str]:
    """endpoint function → full route template (``/api/v1/stock/{sku}``), for metric labels."""
    found: dict[Any, str] = {}
    for module in (warehouses, items, stock, movements, reservations, bench):
        for route in module.router.routes:
            if isinstance(route, APIRoute):
                found[route.endpoint] = API_PREFIX + route.path
    for route in health.router.routes:
        if isinstance(route, APIRoute):
            found[route.endpoint] = route.path
    return found
