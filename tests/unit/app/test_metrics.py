"""The metric names and buckets other parts of the product are written against."""

from __future__ import annotations

from prometheus_client import generate_latest

from app.telemetry.metrics import ApiMetrics, WorkerMetrics


def test_request_histogram_has_the_slo_buckets_and_labels() -> None:
    metrics = ApiMetrics(service="inventory")
    metrics.request_duration.labels(
        service="inventory", route="/api/v1/stock/{sku}", method="GET", status_code="200"
    ).observe(0.2)
    text = generate_latest(metrics.registry).decode()
    for le in ("0.1", "0.25", "0.5"):
        assert (
            f'http_server_request_duration_seconds_bucket{{le="{le}",method="GET",'
            f'route="/api/v1/stock/{{sku}}",service="inventory",status_code="200"}}'
        ) in text
    series = 'route="/api/v1/stock/{sku}",service="inventory",status_code="200"}'
    assert f'le="0.1",method="GET",{series} 0.0' in text
    assert f'le="0.25",method="GET",{series} 1.0' in text


def test_worker_metrics_names() -> None:
    metrics = WorkerMetrics()
    metrics.apply_lag.observe(3.0)
    for outcome in ("applied", "failed", "dead_letter"):
        metrics.apply_total.labels(outcome=outcome).inc()
    text = generate_latest(metrics.registry).decode()
    assert 'inventory_movements_apply_lag_seconds_bucket{le="1.0"} 0.0' in text
    assert 'inventory_movements_apply_lag_seconds_bucket{le="5.0"} 1.0' in text
    for outcome in ("applied", "failed", "dead_letter"):
        assert f'inventory_worker_apply_total{{outcome="{outcome}"}} 1.0' in text
