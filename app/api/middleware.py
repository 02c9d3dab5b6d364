"""Per-request telemetry as a plain ASGI middleware: duration histogram, request counter,
trace-id exemplar and one ECS access-log line. It runs inside the OpenTelemetry server span, so
the span's trace id is on the exemplar and on the log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.telemetry.metrics import ApiMetrics, multiprocess_dir

access_log = logging.getLogger("inventory.access")

UNMATCHED_ROUTE = "<unmatched>"


class RequestTelemetry:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ApiMetrics,
        log_requests: bool,
        routes: Mapping[Any, str],
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics
        self.log_requests = log_requests
        self.exemplars = multiprocess_dir() is None
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _series(self, *, route: str, method: str, status: str) -> tuple[Any, Any]:
        key = (route, method, status)
        found = self._children.get(key)
        if found is None:
            labels = {
                "service": self.metrics.service,
                "route": route,
                "method": method,
                "status_code": status,
            }
            found = (
                self.metrics.request_duration.labels(**labels),
                self.metrics.requests.labels(**labels),
            )
            self._children[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - start
            route = self.routes.get(scope.get("endpoint")) or UNMATCHED_ROUTE
            method = scope["method"]
            histogram, counter = self._series(route=route, method=method, status=str(status))
            context = trace.get_current_span().get_span_context()
            if self.exemplars and context.is_valid and context.trace_flags.sampled:
                histogram.observe(elapsed, exemplar={"trace_id": format(context.trace_id, "032x")})
            else:
                histogram.observe(elapsed)
            counter.inc()
            if self.log_requests:
                access_log.info(
                    "%s %s %s %.1fms",
                    method,
                    scope.get("path", ""),
                    status,
                    elapsed * 1000,
                    extra={
                        "http.request.method": method,
                        "http.response.status_code": status,
                        "url.path": scope.get("path", ""),
                        "http.route": route,
                        "event.duration": int(elapsed * 1e9),
                    },
                )
