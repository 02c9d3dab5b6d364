"""Run one stream worker process: ``python -m app.worker`` (start several for more throughput).

Options override the ``INVENTORY_*`` variables (see app/README.md). SIGTERM / SIGINT finish the
current batch and stop.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
from types import FrameType

import redis
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from prometheus_client import start_http_server
from pydantic import ValidationError

from app.core.config import Settings
from app.core.db import make_sync_engine
from app.telemetry.logs import ElasticsearchShipper, setup_logging
from app.telemetry.metrics import WorkerMetrics
from app.telemetry.tracing import make_tracer_provider
from app.worker.consumer import StreamWorker

log = logging.getLogger("app.worker")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__)
    parser.add_argument("--database-url", help="write DSN (INVENTORY_DATABASE_URL)")
    parser.add_argument("--redis-url", help="INVENTORY_REDIS_URL")
    parser.add_argument("--otlp-endpoint", help="INVENTORY_OTLP_ENDPOINT")
    parser.add_argument("--elasticsearch-url", help="INVENTORY_ELASTICSEARCH_URL")
    parser.add_argument("--metrics-port", type=int, help="INVENTORY_WORKER_METRICS_PORT")
    parser.add_argument("--batch-size", type=int, help="INVENTORY_WORKER_BATCH_SIZE")
    parser.add_argument(
        "--consumer", default=None, help="consumer name in the group (default: host-pid)"
    )
    return parser.parse_args(argv)


def build_settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in {
            "database_url": args.database_url,
            "redis_url": args.redis_url,
            "otlp_endpoint": args.otlp_endpoint,
            "elasticsearch_url": args.elasticsearch_url,
            "worker_metrics_port": args.metrics_port,
            "worker_batch_size": args.batch_size,
        }.items()
        if value is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SystemExit(f"invalid settings (INVENTORY_* variables or options):\n{exc}") from exc


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = build_settings(args)
    metrics = WorkerMetrics()
    shipper = None
    if settings.elasticsearch_url is not None:
        shipper = ElasticsearchShipper(
            url=settings.elasticsearch_url,
            capacity=settings.log_buffer_lines,
            flush_interval=settings.log_flush_interval_seconds,
            bulk_max=settings.log_bulk_max_lines,
            on_dropped=metrics.logs.dropped.inc,
            on_shipped=metrics.logs.shipped.inc,
        )
    setup_logging(
        service_name=settings.worker_service_name,
        level=settings.log_level,
        to_stderr=settings.log_to_stderr,
        shipper=shipper,
    )
    provider = make_tracer_provider(
        service_name=settings.worker_service_name,
        otlp_endpoint=settings.otlp_endpoint,
        sample_ratio=settings.trace_sample_ratio,
    )
    engine = make_sync_engine(
        settings=settings,
        dsn=settings.database_url,
        write=True,
        application_name="inventory-worker",
        # Statements become spans through psycopg's instrumentation (the SQLAlchemy one
        # supports SQLAlchemy < 2.1 only and imports the asyncio extension).
        configure=lambda conn: PsycopgInstrumentor.instrument_connection(
            conn, tracer_provider=provider
        ),
    )
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=5.0, socket_connect_timeout=2.0
    )
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr="127.0.0.1", registry=metrics.registry)
    consumer = args.consumer or f"{socket.gethostname()}-{os.getpid()}"
    worker = StreamWorker(
        settings=settings,
        client=client,
        engine=engine,
        metrics=metrics,
        tracer=provider.get_tracer("app.worker"),
        consumer=consumer,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("worker %s started on stream %s", consumer, settings.stream_key)
    try:
        worker.run(stop=stop)
    finally:
        log.info("worker %s stopped", consumer)
        provider.shutdown()
        engine.dispose()
        client.close()
        if shipper is not None:
            logging.getLogger().removeHandler(shipper)
            shipper.close()


if __name__ == "__main__":
    main()
