"""OpenTelemetry traces exported over OTLP/HTTP (to Jaeger), and the instrumentation switches."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased


def make_tracer_provider(
    *, service_name: str, otlp_endpoint: str | None, sample_ratio: float
) -> TracerProvider:
    """A provider for ``service_name``; without an endpoint spans are made but not exported
    (trace ids still reach the logs, so the two can be correlated)."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    if otlp_endpoint is not None:
        exporter = OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces", timeout=5)
        provider.add_span_processor(
            BatchSpanProcessor(exporter, max_queue_size=8192, schedule_delay_millis=500)
        )
    return provider
