"""One smoke test per backend: each does something real against a server the fixtures started."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from elasticsearch import Elasticsearch as ElasticsearchClient
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import CollectorRegistry, Counter, start_http_server

from controlplane.core.processes import free_ports
from controlplane.stack.backends import (
    Alertmanager,
    Elasticsearch,
    Jaeger,
    PostgresPrimary,
    PostgresReplica,
    Redis,
)
from tests.support.backends import PrometheusFactory

pytestmark = pytest.mark.integration


def eventually(
    check: Callable[[], object], *, timeout: float = 30.0, interval: float = 0.25
) -> object:
    """Poll ``check`` until it returns a truthy value; bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


def test_postgres_row_written_on_primary_is_read_on_replica(
    postgres_primary: PostgresPrimary, postgres_replica: PostgresReplica
) -> None:
    table = f"smoke_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_primary.dsn(), autocommit=True) as primary:
        primary.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, sku text NOT NULL)")
        primary.execute(f"INSERT INTO {table} VALUES (1, 'SKU-42')")
        row = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert row is not None
        lsn = row[0]

    with psycopg.connect(postgres_replica.dsn(), autocommit=True) as replica:
        in_recovery = replica.execute("SELECT pg_is_in_recovery()").fetchone()
        assert in_recovery == (True,)

        def replayed() -> bool:
            got = replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(lsn),)
            ).fetchone()
            return bool(got and got[0])

        eventually(replayed)
        assert replica.execute(f"SELECT sku FROM {table} WHERE id = 1").fetchone() == ("SKU-42",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            replica.execute(f"INSERT INTO {table} VALUES (2, 'SKU-43')")


def test_redis_set_then_get(redis_server: Redis) -> None:
    with redis_server.client() as client:
        key = f"smoke:{uuid.uuid4().hex}"
        assert client.set(key, "on-hand=17", ex=60) is True
        assert client.get(key) == b"on-hand=17"
        assert 0 < client.ttl(key) <= 60


def test_prometheus_scrapes_a_target_and_answers_promql(
    prometheus_factory: PrometheusFactory,
) -> None:
    registry = CollectorRegistry()
    counter = Counter("smoke_requests", "Requests seen by the smoke target", registry=registry)
    counter.inc(7)
    (port,) = free_ports(1)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prometheus = prometheus_factory(
            config={
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "smoke", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                ],
            }
        )

        def query(expr: str) -> list[dict[str, object]]:
            response = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr})
            response.raise_for_status()
            body = response.json()
            assert body["status"] == "success"
            result: list[dict[str, object]] = body["data"]["result"]
            return result

        up = eventually(lambda: query('up{job="smoke"} == 1'))
        assert isinstance(up, list)
        assert len(up) == 1
        total = query('smoke_requests_total{job="smoke"}')
        assert [float(sample["value"][1]) for sample in total] == [7.0]  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_alertmanager_accepts_an_alert_and_lists_it(alertmanager: Alertmanager) -> None:
    name = f"SmokeAlert{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": name, "service": "inventory", "severity": "ticket"},
        "annotations": {"summary": "smoke test alert"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }
    posted = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[alert], timeout=5)
    assert posted.status_code == 200

    def listed() -> list[dict[str, object]]:
        response = httpx.get(
            f"{alertmanager.url}/api/v2/alerts", params={"filter": f'alertname="{name}"'}
        )
        response.raise_for_status()
        alerts: list[dict[str, object]] = response.json()
        return alerts

    alerts = eventually(listed)
    assert isinstance(alerts, list)
    assert alerts[0]["labels"] == alert["labels"]
    assert alerts[0]["status"]["state"] == "active"  # type: ignore[index]


def test_elasticsearch_indexes_a_document_and_search_finds_it(elasticsearch: Elasticsearch) -> None:
    client = ElasticsearchClient(elasticsearch.url, request_timeout=30)
    index = f"smoke-{uuid.uuid4().hex[:8]}"
    try:
        client.index(
            index=index,
            id="1",
            document={
                "@timestamp": "2026-01-01T00:00:00Z",
                "message": "stock level updated SKU-42",
            },
            refresh="wait_for",
        )
        client.index(
            index=index,
            id="2",
            document={"@timestamp": "2026-01-01T00:00:01Z", "message": "reservation expired"},
            refresh="wait_for",
        )
        found = client.search(index=index, query={"match": {"message": "SKU-42"}})
        assert found["hits"]["total"]["value"] == 1
        assert found["hits"]["hits"][0]["_id"] == "1"
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        client.close()


def test_jaeger_receives_an_otlp_span_and_returns_it(jaeger: Jaeger) -> None:
    service = f"smoke-{uuid.uuid4().hex[:8]}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{jaeger.otlp_http_endpoint}/v1/traces", timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("smoke")
    with tracer.start_as_current_span("reserve-stock") as span:
        span.set_attribute("inventory.sku", "SKU-42")
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.force_flush()
    provider.shutdown()

    def fetched() -> list[dict[str, object]]:
        response = httpx.get(f"{jaeger.query_url}/api/traces/{trace_id}", timeout=5)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        data: list[dict[str, object]] = response.json()["data"]
        return data

    traces = eventually(fetched)
    assert isinstance(traces, list)
    spans = traces[0]["spans"]
    assert [s["operationName"] for s in spans] == ["reserve-stock"]  # type: ignore[index, union-attr]
    services = httpx.get(f"{jaeger.query_url}/api/services", timeout=5).json()["data"]
    assert service in services
