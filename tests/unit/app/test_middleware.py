"""Per-request telemetry: route-template labels, status codes, trace-id exemplars, access log."""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from starlette.types import Message, Receive, Scope, Send

from app.api.middleware import UNMATCHED_ROUTE, RequestTelemetry
from app.telemetry.metrics import ApiMetrics


async def stock_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def call(app: RequestTelemetry, *, path: str, endpoint: object) -> None:
    scope: Scope = {"type": "http", "method": "GET", "path": path, "endpoint": endpoint}

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        return None

    asyncio.run(app(scope, receive, send))


def test_requests_are_labelled_by_route_template_and_carry_the_trace_as_exemplar(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ApiMetrics(service="inventory")

    async def routed(scope: Scope, receive: Receive, send: Send) -> None:
        await stock_endpoint(scope, receive, send)

    app = RequestTelemetry(
        routed,
        metrics=metrics,
        log_requests=True,
        routes={stock_endpoint: "/api/v1/stock/{sku}"},
    )
    tracer = TracerProvider().get_tracer("test")
    with (
        caplog.at_level(logging.INFO, logger="inventory.access"),
        tracer.start_as_current_span("GET /api/v1/stock/{sku}") as span,
    ):
        call(app, path="/api/v1/stock/SKU-1", endpoint=stock_endpoint)
    call(app, path="/nowhere", endpoint=None)

    text = openmetrics(metrics.registry).decode()
    trace_id = format(span.get_span_context().trace_id, "032x")
    labels = 'method="GET",route="/api/v1/stock/{sku}",service="inventory",status_code="200"'
    buckets = [
        line
        for line in text.splitlines()
        if line.startswith("http_server_request_duration_seconds_bucket") and labels in line
    ]
    # The exemplar sits on the bucket the observation fell into.
    assert any(f'# {{trace_id="{trace_id}"}}' in line for line in buckets)
    assert f"http_server_requests_total{{{labels}}} 1.0" in text
    assert f'route="{UNMATCHED_ROUTE}"' in text
    record = next(r for r in caplog.records if r.name == "inventory.access")
    assert record.getMessage().startswith("GET /api/v1/stock/SKU-1 200")
    assert record.__dict__["http.route"] == "/api/v1/stock/{sku}"
