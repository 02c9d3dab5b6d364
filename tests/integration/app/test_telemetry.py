"""One request, seen three ways: its trace in Jaeger, its log line in Elasticsearch (same trace
id), and its duration in Prometheus' histogram."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.stack.backends import Elasticsearch, Jaeger, Redis
from tests.integration.app.conftest import (
    Databases,
    Stack,
    eventually,
    make_item,
    stack_env,
    submit,
    unique,
    wait_status,
)
from tests.support.backends import PrometheusFactory


def jaeger_trace(jaeger: Jaeger, trace_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{jaeger.query_url}/api/traces/{trace_id}", timeout=5)
    if response.status_code != 200:
        return None
    data = response.json().get("data") or []
    return data[0] if data else None


def log_lines(es: Elasticsearch, trace_id: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{es.url}/logs-inventory-*/_search",
        json={"query": {"match": {"trace.id": trace_id}}},
        timeout=5,
    )
    if response.status_code != 200:
        return []
    return [hit["_source"] for hit in response.json()["hits"]["hits"]]


def prometheus_value(url: str, query: str) -> float | None:
    result = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    samples = result["data"]["result"]
    return float(samples[0]["value"][1]) if samples else None


def test_a_request_is_found_in_jaeger_elasticsearch_and_prometheus(
    tmp_path_factory: pytest.TempPathFactory,
    databases: Databases,
    redis_server: Redis,
    jaeger: Jaeger,
    elasticsearch: Elasticsearch,
    prometheus_factory: PrometheusFactory,
) -> None:
    env = stack_env(dbs=databases, redis=redis_server, stream=unique("inventory:movements"))
    env.update(
        INVENTORY_OTLP_ENDPOINT=jaeger.otlp_http_endpoint,
        INVENTORY_ELASTICSEARCH_URL=elasticsearch.url,
        INVENTORY_TRACE_SAMPLE_RATIO="1.0",
        INVENTORY_LOG_FLUSH_INTERVAL_SECONDS="0.2",
    )
    stack = Stack(tmp=Path(tmp_path_factory.mktemp("telemetry")), base_env=env)
    try:
        api = stack.api(workers=2)
        stack.worker()
        prometheus = prometheus_factory(
            config={
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "inventory",
                        "scrape_interval": "1s",
                        "static_configs": [{"targets": [f"127.0.0.1:{api.port}"]}],
                    }
                ],
            }
        )
        with api.client() as client:
            sku = make_item(client)
            trace_id = secrets.token_hex(16)
            traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
            read = client.get(f"/api/v1/stock/{sku}", headers={"traceparent": traceparent})
            assert read.status_code == 200

            write_trace = secrets.token_hex(16)
            accepted = client.post(
                "/api/v1/movements",
                json={"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 1},
                headers={
                    "traceparent": f"00-{write_trace}-{secrets.token_hex(8)}-01",
                    "Idempotency-Key": secrets.token_hex(8),
                },
            )
            assert wait_status(client, accepted.json()["id"])["status"] == "applied"
            assert submit(client, {"kind": "ship", "sku": sku, "warehouse": "W1", "quantity": 1})

        # Jaeger: the server span with its route, and the database / cache spans under it.
        trace = eventually(lambda: jaeger_trace(jaeger, trace_id), timeout=30, what="trace")
        services = {p["serviceName"] for p in trace["processes"].values()}
        operations = {span["operationName"] for span in trace["spans"]}
        assert services == {"inventory"}
        assert "GET /api/v1/stock/{sku}" in operations
        assert operations & {"MGET", "SELECT"}

        # The movement's trace continues in the worker that applied it.
        def worker_joined() -> set[str] | None:
            found = jaeger_trace(jaeger, write_trace)
            if found is None:
                return None
            names = {p["serviceName"] for p in found["processes"].values()}
            return names if {"inventory", "inventory-worker"} <= names else None

        assert eventually(worker_joined, timeout=30, what="worker span") == {
            "inventory",
            "inventory-worker",
        }

        # Elasticsearch: the access-log line of the same request, by the same trace id.
        lines = eventually(lambda: log_lines(elasticsearch, trace_id), timeout=30, what="log")
        line = lines[0]
        assert line["service"]["name"] == "inventory"
        assert line["log.level"] == "info"
        assert line["http"]["route"] == "/api/v1/stock/{sku}"
        assert len(line["span"]["id"]) == 16
        assert "@timestamp" in line
        indices = httpx.get(f"{elasticsearch.url}/_cat/indices/logs-inventory-*?h=index").text
        assert indices.strip().startswith("logs-inventory-20")

        # Prometheus: the request is in the duration histogram, in the SLO buckets.
        series = (
            'http_server_request_duration_seconds_bucket{service="inventory",'
            'route="/api/v1/stock/{sku}",method="GET",status_code="200",le="0.5"}'
        )
        assert eventually(lambda: prometheus_value(prometheus.url, series), timeout=30) >= 1
        movements = 'http_server_requests_total{route="/api/v1/movements",status_code="202"}'
        assert eventually(lambda: prometheus_value(prometheus.url, f"sum({movements})")) >= 2
    finally:
        stack.stop_all()
