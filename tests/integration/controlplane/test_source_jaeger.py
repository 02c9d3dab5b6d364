"""The Jaeger source against a real Jaeger v2 fed over OTLP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from controlplane.sources.base import NoData, RetryPolicy, SourceUnavailable, Trace
from controlplane.sources.jaeger import JaegerSource
from controlplane.stack.backends import Jaeger
from tests.support.backends import BackendPool, launch

START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


@dataclass(frozen=True)
class Sent:
    service: str
    #: trace id by name: slow (400 ms), fast (100 ms), slow_error (600 ms), fast_error (50 ms)
    traces: dict[str, str]


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


@pytest.fixture(scope="module")
def sent(jaeger: Jaeger) -> Sent:
    service = f"cp-test-{uuid.uuid4().hex[:8]}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{jaeger.otlp_http_endpoint}/v1/traces"))
    )
    tracer = provider.get_tracer("controlplane-tests")
    shapes = {"slow": (400, False), "fast": (100, False), "slow_error": (600, True)}
    shapes["fast_error"] = (50, True)
    traces = {}
    for offset, (name, (millis, failed)) in enumerate(shapes.items()):
        begin = START + timedelta(seconds=offset)
        root = tracer.start_span("GET /api/v1/items", start_time=_ns(begin))
        context = otel_trace.set_span_in_context(root)
        child = tracer.start_span("SELECT stock", context=context, start_time=_ns(begin))
        child.end(end_time=_ns(begin + timedelta(milliseconds=millis // 2)))
        if failed:
            root.set_status(Status(StatusCode.ERROR, "boom"))
        root.end(end_time=_ns(begin + timedelta(milliseconds=millis)))
        traces[name] = format(root.get_span_context().trace_id, "032x")
    provider.force_flush()
    provider.shutdown()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until Jaeger has all four
        found = [
            httpx.get(f"{jaeger.query_url}/api/traces/{trace_id}", timeout=5).status_code
            for trace_id in traces.values()
        ]
        if found == [200] * len(traces):
            break
        time.sleep(0.25)
    return Sent(service=service, traces=traces)


@pytest.fixture
def source(jaeger: Jaeger) -> Iterator[JaegerSource]:
    found = JaegerSource(url=jaeger.query_url, timeout=5)
    yield found
    found.close()


WINDOW = {"start": START - timedelta(minutes=1), "end": START + timedelta(minutes=1)}


def test_slowest_traces_above_the_latency_threshold(source: JaegerSource, sent: Sent) -> None:
    slow = source.slowest_traces(
        service=sent.service, min_duration=timedelta(milliseconds=250), **WINDOW
    )
    assert not isinstance(slow, NoData)
    assert [summary.trace_id for summary in slow] == [
        sent.traces["slow_error"],
        sent.traces["slow"],
    ]
    first = slow[0]
    assert first.duration == timedelta(milliseconds=600)
    assert first.service == sent.service
    assert first.operation == "GET /api/v1/items"
    assert first.span_count == 2
    assert first.error is True
    assert slow[1].error is False

    only_one = source.slowest_traces(
        service=sent.service,
        min_duration=timedelta(milliseconds=250),
        operation="GET /api/v1/items",
        limit=1,
        **WINDOW,
    )
    assert not isinstance(only_one, NoData)
    assert [summary.trace_id for summary in only_one] == [sent.traces["slow_error"]]


def test_error_traces(source: JaegerSource, sent: Sent) -> None:
    errors = source.error_traces(service=sent.service, **WINDOW)
    assert not isinstance(errors, NoData)
    assert {summary.trace_id for summary in errors} == {
        sent.traces["slow_error"],
        sent.traces["fast_error"],
    }
    assert all(summary.error for summary in errors)
    assert errors[0].start >= errors[1].start  # newest first


def test_a_trace_by_id(source: JaegerSource, sent: Sent) -> None:
    trace = source.trace(sent.traces["slow"])
    assert isinstance(trace, Trace)
    assert trace.root.operation == "GET /api/v1/items"
    assert trace.root.parent_id is None
    (child,) = [span for span in trace.spans if span.parent_id is not None]
    assert child.parent_id == trace.root.span_id
    assert child.operation == "SELECT stock"
    assert child.duration == timedelta(milliseconds=200)
    assert trace.duration == timedelta(milliseconds=400)
    assert trace.has_error is False


def test_nothing_known_is_no_data_and_nothing_matching_is_empty(
    source: JaegerSource, sent: Sent
) -> None:
    missing = source.trace(uuid.uuid4().hex)
    assert isinstance(missing, NoData)
    assert missing.reason == "not_found"
    unknown = source.slowest_traces(
        service="never-reported", min_duration=timedelta(milliseconds=1), **WINDOW
    )
    assert isinstance(unknown, NoData)
    assert unknown.reason == "unknown_service"
    earlier = source.error_traces(
        service=sent.service, start=START - timedelta(hours=2), end=START - timedelta(hours=1)
    )
    assert earlier == ()
    none_that_slow = source.slowest_traces(
        service=sent.service, min_duration=timedelta(seconds=5), **WINDOW
    )
    assert none_that_slow == ()


def test_a_stopped_jaeger_is_unavailable(backend_pool: BackendPool) -> None:
    server = launch(backend_pool, Jaeger)
    source = JaegerSource(
        url=server.query_url, timeout=2, retry=RetryPolicy(attempts=2, max_wait=0.2)
    )
    try:
        assert isinstance(source.trace(uuid.uuid4().hex), NoData)
        backend_pool.stop(server)
        with pytest.raises(SourceUnavailable) as caught:
            source.trace(uuid.uuid4().hex)
        assert caught.value.source == "jaeger"
        assert isinstance(caught.value.__cause__, httpx.TransportError)
    finally:
        source.close()
        backend_pool.stop(server)
