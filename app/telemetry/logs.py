"""ECS JSON logs with trace.id / span.id, shipped to Elasticsearch in bulk without blocking.

``emit`` only formats the line and puts it on a bounded queue; a background thread sends the
queue to ``_bulk`` every second (or sooner when a bulk is full). When the queue is full or
Elasticsearch refuses a bulk, lines are dropped and counted (``inventory_log_lines_dropped_total``)
— the request that logged never waits for Elasticsearch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import ecs_logging
import httpx
from opentelemetry import trace

#: Index pattern of the log lines (one index per UTC day).
INDEX_PREFIX = "logs-inventory-"


def index_for(created: float) -> str:
    return INDEX_PREFIX + datetime.fromtimestamp(created, tz=UTC).strftime("%Y.%m.%d")


class TraceContextFilter(logging.Filter):
    """Puts the current span's ids and the service name on every record (ECS trace.id etc.)."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.elasticapm_trace_id = format(context.trace_id, "032x")
            record.elasticapm_span_id = format(context.span_id, "016x")
        record.elasticapm_service_name = self.service_name
        return True


def ecs_formatter() -> logging.Formatter:
    return ecs_logging.StdlibFormatter(exclude_fields=["log.original", "process.thread.name"])


class ElasticsearchShipper(logging.Handler):
    """A logging handler that ships ECS lines to Elasticsearch from a background thread."""

    def __init__(
        self,
        *,
        url: str,
        capacity: int,
        flush_interval: float,
        bulk_max: int,
        on_dropped: Callable[[int], None],
        on_shipped: Callable[[int], None],
    ) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.flush_interval = flush_interval
        self.bulk_max = bulk_max
        self.on_dropped = on_dropped
        self.on_shipped = on_shipped
        self.dropped = 0
        self.shipped = 0
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._flush_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    # -- producer side (any thread, never blocks) --------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except (TypeError, ValueError):
            self.handleError(record)
            return
        try:
            self._queue.put_nowait((index_for(record.created), line))
        except queue.Full:
            self._drop(1)
            return
        if self._queue.qsize() >= self.bulk_max:
            self._flush_now.set()

    def _drop(self, count: int) -> None:
        self.dropped += count
        self.on_dropped(count)

    # -- consumer side -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._client = httpx.Client(timeout=5.0)
            self._thread = threading.Thread(target=self._run, name="es-log-shipper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._flush_now.wait(self.flush_interval)
            self._flush_now.clear()
            self._ship_available()
        self._ship_available()

    def _ship_available(self) -> None:
        while True:
            batch: list[tuple[str, str]] = []
            with contextlib.suppress(queue.Empty):
                while len(batch) < self.bulk_max:
                    batch.append(self._queue.get_nowait())
            if not batch:
                return
            self._send(batch)
            if len(batch) < self.bulk_max:
                return

    def _send(self, batch: list[tuple[str, str]]) -> None:
        body = "".join(
            json.dumps({"create": {"_index": index}}) + "\n" + line + "\n" for index, line in batch
        )
        assert self._client is not None
        try:
            response = self._client.post(
                f"{self.url}/_bulk",
                content=body.encode(),
                headers={"Content-Type": "application/x-ndjson"},
            )
            response.raise_for_status()
            result = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._drop(len(batch))
            _report(f"log shipper: bulk of {len(batch)} lines failed: {exc}")
            return
        failed = 0
        if result.get("errors"):
            failed = sum(
                1 for item in result.get("items", []) if next(iter(item.values())).get("error")
            )
            self._drop(failed)
        ok = len(batch) - failed
        self.shipped += ok
        self.on_shipped(ok)

    def flush(self) -> None:
        """Ship what is queued now (from the caller's thread when the shipper is not running)."""
        if self._thread is not None and self._thread.is_alive():
            self._flush_now.set()
            deadline = time.monotonic() + 5.0
            while not self._queue.empty() and time.monotonic() < deadline:
                time.sleep(0.02)
        elif self._client is not None:
            self._ship_available()

    def close(self) -> None:
        self._stop.set()
        self._flush_now.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None
        super().close()


def _report(message: str) -> None:
    """Problems of the log pipeline itself go to stderr, never back into logging."""
    print(message, file=sys.stderr, flush=True)  # noqa: T201


def setup_logging(
    *,
    service_name: str,
    level: str,
    to_stderr: bool,
    shipper: ElasticsearchShipper | None,
) -> None:
    """Route the root logger through ECS formatting (stderr and/or the shipper)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if isinstance(handler, ElasticsearchShipper):
            handler.close()
    context = TraceContextFilter(service_name)
    formatter = ecs_formatter()
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        stream.addFilter(context)
        root.addHandler(stream)
    if shipper is not None:
        shipper.setFormatter(formatter)
        shipper.addFilter(context)
        root.addHandler(shipper)
        shipper.start()
    root.setLevel(level)
    # The shipper's own HTTP client must not log each bulk request back into the shipper.
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
