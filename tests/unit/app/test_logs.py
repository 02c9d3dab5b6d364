"""ECS log lines carry the trace; the shipper never blocks and counts what it drops."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from app.telemetry.logs import (
    ElasticsearchShipper,
    TraceContextFilter,
    ecs_formatter,
    index_for,
)


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("app.test", logging.WARNING, __file__, 1, message, None, None)


def test_a_line_logged_inside_a_span_carries_its_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    formatter = ecs_formatter()
    with tracer.start_as_current_span("request") as span:
        line = record("hello")
        TraceContextFilter("inventory").filter(line)
        doc = json.loads(formatter.format(line))
    context = span.get_span_context()
    assert doc["trace"]["id"] == format(context.trace_id, "032x")
    assert doc["span"]["id"] == format(context.span_id, "016x")
    assert doc["service"]["name"] == "inventory"
    assert doc["log.level"] == "warning"
    assert "@timestamp" in doc


def test_indices_are_daily() -> None:
    assert index_for(0.0) == "logs-inventory-1970.01.01"


def test_a_full_buffer_drops_lines_and_counts_them() -> None:
    dropped: list[int] = []
    shipper = ElasticsearchShipper(
        url="http://127.0.0.1:9",
        capacity=3,
        flush_interval=60,
        bulk_max=100,
        on_dropped=dropped.append,
        on_shipped=lambda _n: None,
    )
    shipper.setFormatter(ecs_formatter())
    for i in range(5):
        shipper.emit(record(f"line {i}"))  # not started: nothing drains the buffer
    assert shipper.dropped == 2
    assert sum(dropped) == 2
    shipper.close()
