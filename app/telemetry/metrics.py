"""Prometheus metrics of the API and the workers.

The names below are fixed: SLO specs and alert rules elsewhere in the product are written
against them. Under gunicorn every worker process writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` merges them (prometheus_client's multiprocess mode,
which cannot carry exemplars); a single process keeps them in memory and attaches trace-id
exemplars, shown when the scraper asks for OpenMetrics.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.multiprocess import MultiProcessCollector

#: Request latency buckets; 0.1, 0.25 and 0.5 s are the SLO thresholds.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds from 202 to commit; 1 and 5 s are SLO thresholds.
APPLY_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000)
APPLY_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class StreamGauges:
    """Length of the movement stream and lag of the consumer group (set from Redis)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.length = Gauge(
            "inventory_stream_length",
            "Movements in the Redis stream (queued, not yet applied and deleted).",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.lag = Gauge(
            "inventory_stream_consumer_lag",
            "Entries of the stream not yet delivered to the consumer group.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.pending = Gauge(
            "inventory_stream_pending",
            "Entries delivered to a worker and not yet acknowledged.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )


class LogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped = Counter(
            "inventory_log_lines_dropped",
            "Log lines dropped by the Elasticsearch shipper (buffer full or bulk refused).",
            registry=registry,
        )
        self.shipped = Counter(
            "inventory_log_lines_shipped",
            "Log lines indexed in Elasticsearch.",
            registry=registry,
        )


class ApiMetrics:
    def __init__(self, *, service: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.service = service
        r = self.registry
        self.request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP requests, by route template, method and status code.",
            ["service", "route", "method", "status_code"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "http_server_requests",
            "HTTP requests, by route template, method and status code.",
            ["service", "route", "method", "status_code"],
            registry=r,
        )
        self.cache = Counter(
            "inventory_cache_requests",
            "Stock cache lookups by result (hit, miss, error = Redis down, PostgreSQL read) and "
            "tier (near = the process's own copy, redis).",
            ["result", "tier"],
            registry=r,
        )
        self.pool_in_use = Gauge(
            "inventory_db_pool_connections_in_use",
            "Connections checked out of the SQLAlchemy pool.",
            ["pool"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_size = Gauge(
            "inventory_db_pool_size",
            "Configured size of the SQLAlchemy pool (plus overflow).",
            ["pool"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.replica_lag = Gauge(
            "inventory_db_replica_lag_seconds",
            "Replay lag of the read replica as last measured (inf when unreachable).",
            registry=r,
            multiprocess_mode="max",
        )
        self.stream = StreamGauges(r)
        self.logs = LogMetrics(r)

    def scrape_registry(self) -> CollectorRegistry:
        """What ``/metrics`` exposes: merged files in multiprocess mode, else this registry."""
        directory = multiprocess_dir()
        if directory is None:
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return merged


class WorkerMetrics:
    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.apply_lag = Histogram(
            "inventory_movements_apply_lag_seconds",
            "Seconds from a movement's acceptance (202) to its commit in PostgreSQL.",
            buckets=APPLY_LAG_BUCKETS,
            registry=r,
        )
        self.apply_total = Counter(
            "inventory_worker_apply",
            "Movements handled by the workers, by outcome (applied, failed, dead_letter).",
            ["outcome"],
            registry=r,
        )
        self.batch_size = Histogram(
            "inventory_worker_batch_size",
            "Movements per batch read from the stream.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.apply_duration = Histogram(
            "inventory_worker_batch_apply_duration_seconds",
            "Seconds to apply one batch in PostgreSQL (one transaction, commit included).",
            buckets=APPLY_DURATION_BUCKETS,
            registry=r,
        )
        self.duplicates = Counter(
            "inventory_worker_duplicates",
            "Redelivered or repeated movements skipped because their key was already recorded.",
            registry=r,
        )
        self.reclaimed = Counter(
            "inventory_worker_reclaimed",
            "Pending entries of dead consumers claimed by this worker.",
            registry=r,
        )
        self.reservations_expired = Counter(
            "inventory_reservations_expired",
            "Reservations expired by the sweeper.",
            registry=r,
        )
        self.stream = StreamGauges(r)
        self.logs = LogMetrics(r)
