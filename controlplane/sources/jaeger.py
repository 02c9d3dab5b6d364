"""Jaeger through its HTTP query API (``/api/services``, ``/api/traces``, ``/api/traces/{id}``).

* :meth:`JaegerSource.slowest_traces`: traces of a service (and operation) in a window with a span
  at least ``min_duration`` long (the SLO's latency threshold), slowest first.
* :meth:`JaegerSource.error_traces`: traces with an error span (tag ``error=true``, or OTLP
  status ERROR), newest first.
* :meth:`JaegerSource.trace`: one trace by id.

A service Jaeger has never seen is :class:`~controlplane.sources.base.NoData`
(``unknown_service``); a known service without matching traces is an empty tuple.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from controlplane.core.config import ControlPlaneSettings
from controlplane.sources.base import (
    NoData,
    RetryPolicy,
    SourceQueryError,
    SourceUnavailable,
    Span,
    Trace,
    TraceSummary,
)

__all__ = ["JaegerSource"]

T = TypeVar("T")
SOURCE = "jaeger"
#: Jaeger's search returns *some* matching traces up to its limit, in no duration order; ask for
#: this many times more than wanted, then sort.
OVERFETCH = 5


def _micros(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware times")
    return int(value.timestamp() * 1_000_000)


def _duration_param(value: timedelta) -> str:
    return f"{int(value.total_seconds() * 1_000_000)}us"


def _is_error(tags: Mapping[str, Any]) -> bool:
    error = tags.get("error")
    return error is True or str(error).lower() == "true" or tags.get("otel.status_code") == "ERROR"


def _parse_trace(raw: Mapping[str, Any]) -> Trace:
    processes = raw.get("processes") or {}
    spans = []
    for span in raw.get("spans") or []:
        tags = {tag["key"]: tag.get("value") for tag in span.get("tags") or []}
        parent = next(
            (
                ref["spanID"]
                for ref in span.get("references") or []
                if ref.get("refType") == "CHILD_OF" and ref.get("traceID") == raw["traceID"]
            ),
            None,
        )
        process = processes.get(span.get("processID"), {})
        spans.append(
            Span(
                span_id=str(span["spanID"]),
                parent_id=parent,
                service=str(process.get("serviceName", "")),
                operation=str(span.get("operationName", "")),
                start=datetime.fromtimestamp(int(span["startTime"]) / 1_000_000, tz=UTC),
                duration=timedelta(microseconds=int(span["duration"])),
                tags=tags,
                error=_is_error(tags),
            )
        )
    if not spans:
        raise ValueError(f"trace {raw.get('traceID')} has no spans")
    return Trace(trace_id=str(raw["traceID"]), spans=tuple(spans))


def _summary(trace: Trace) -> TraceSummary:
    root = trace.root
    return TraceSummary(
        trace_id=trace.trace_id,
        service=root.service,
        operation=root.operation,
        start=min(span.start for span in trace.spans),
        duration=trace.duration,
        span_count=len(trace.spans),
        error=trace.has_error,
    )


class JaegerSource:
    """:class:`~controlplane.sources.base.TraceSource` over the Jaeger query HTTP API."""

    name = SOURCE

    def __init__(self, *, url: str, timeout: float, retry: RetryPolicy | None = None) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._client = httpx.Client(base_url=self.url, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings) -> JaegerSource:
        return cls(
            url=settings.sources.jaeger_url,
            timeout=settings.sources.source_timeout_seconds,
            retry=RetryPolicy(
                attempts=settings.sources.source_retry_attempts,
                max_wait=settings.sources.source_retry_max_wait_seconds,
            ),
        )

    def close(self) -> None:
        self._client.close()

    # -- reads -----------------------------------------------------------------------------------
    def services(self) -> tuple[str, ...]:
        body = self._get("/api/services")
        return tuple(sorted(str(name) for name in body.get("data") or []))

    def slowest_traces(
        self,
        *,
        service: str,
        start: datetime,
        end: datetime,
        min_duration: timedelta,
        operation: str | None = None,
        limit: int = 20,
    ) -> tuple[TraceSummary, ...] | NoData:
        found = self._search(
            service=service,
            start=start,
            end=end,
            operation=operation,
            limit=limit * OVERFETCH,
            extra={"minDuration": _duration_param(min_duration)},
        )
        if isinstance(found, NoData):
            return found
        slowest = sorted(found, key=lambda summary: summary.duration, reverse=True)
        return tuple(slowest[:limit])

    def error_traces(
        self,
        *,
        service: str,
        start: datetime,
        end: datetime,
        operation: str | None = None,
        limit: int = 20,
    ) -> tuple[TraceSummary, ...] | NoData:
        def search(limit: int, extra: Mapping[str, str]) -> list[TraceSummary] | NoData:
            return self._search(
                service=service,
                start=start,
                end=end,
                operation=operation,
                limit=limit,
                extra=extra,
            )

        found = search(limit, {"tags": json.dumps({"error": "true"})})
        if isinstance(found, NoData):
            return found
        # Some storages do not honour the error tag (Jaeger v2's memory store reads the string
        # "true" as a boolean and matches OK spans instead): keep only traces that do have an
        # error span, and when the tagged search found none, scan untagged traces.
        errors = [summary for summary in found if summary.error]
        if not errors:
            scanned = search(limit * OVERFETCH, {})
            if isinstance(scanned, NoData):
                return scanned
            errors = [summary for summary in scanned if summary.error]
        newest = sorted(errors, key=lambda summary: summary.start, reverse=True)
        return tuple(newest[:limit])

    def trace(self, trace_id: str) -> Trace | NoData:
        body = self._get(f"/api/traces/{trace_id}", not_found_ok=True)
        data = body.get("data")
        if not data:
            return NoData("not_found", f"no trace {trace_id} in Jaeger")
        try:
            return _parse_trace(data[0])
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceQueryError(SOURCE, f"unreadable trace {trace_id}: {exc!r}") from exc

    # -- internals -------------------------------------------------------------------------------
    def _search(
        self,
        *,
        service: str,
        start: datetime,
        end: datetime,
        operation: str | None,
        limit: int,
        extra: Mapping[str, str],
    ) -> list[TraceSummary] | NoData:
        if service not in self.services():
            return NoData("unknown_service", f"Jaeger has no traces of service {service!r}")
        params: dict[str, str] = {
            "service": service,
            "start": str(_micros(start)),
            "end": str(_micros(end)),
            "limit": str(limit),
            **extra,
        }
        if operation is not None:
            params["operation"] = operation
        body = self._get("/api/traces", params=params)
        try:
            return [_summary(_parse_trace(raw)) for raw in body.get("data") or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceQueryError(SOURCE, f"unreadable search answer: {exc!r}") from exc

    def _get(
        self, path: str, *, params: Mapping[str, str] | None = None, not_found_ok: bool = False
    ) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            response = self._client.get(path, params=params)
            if response.status_code >= 500 or response.status_code == 429:
                raise SourceUnavailable(SOURCE, f"{self.url}{path} answered {response.status_code}")
            if response.status_code == 404 and not_found_ok:
                return {"data": None}
            if response.status_code >= 400:
                raise SourceQueryError(
                    SOURCE, f"{path} answered {response.status_code}: {response.text[:300]}"
                )
            body = response.json()
            if not isinstance(body, dict):
                raise SourceQueryError(SOURCE, f"{path} answered {type(body).__name__}, not JSON")
            return body

        return self.retry.call(lambda: self._translate(call))

    def _translate(self, function: Callable[[], T]) -> T:
        try:
            return function()
        except httpx.TransportError as exc:
            raise SourceUnavailable(SOURCE, f"{self.url} unreachable: {exc!r}") from exc
        except ValueError as exc:  # JSON decoding
            raise SourceQueryError(SOURCE, f"unreadable answer from {self.url}: {exc}") from exc
