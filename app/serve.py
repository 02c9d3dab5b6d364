"""Run the inventory API under gunicorn with uvicorn workers: ``python -m app.serve``.

The worker count changes at runtime with signals to the master (``kill -TTIN <pid>`` adds a
worker, ``kill -TTOU <pid>`` removes one); ``--pidfile`` tells a scaling actuator where the
master's pid is. Every option can also come from its ``INVENTORY_*`` variable (see app/README.md).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from pydantic import ValidationError

from app.core.config import Settings

WORKER_CLASS = "app.gunicorn_worker.InventoryUvicornWorker"


def freeze_heap() -> None:
    """Collect once, then move every object alive now to the garbage collector's permanent
    generation. Modules, classes and the app are long-lived and never garbage, yet a full
    collection walks all of them (~150k objects: 100+ ms of CPU, during which the worker answers
    nothing). Frozen, they are skipped: later full collections only walk what requests created."""
    gc.collect()
    gc.freeze()


def _post_worker_init(worker: Any) -> None:
    """The worker built its app: freeze it too, before it accepts its first connection."""
    freeze_heap()


def _child_exit(server: Any, worker: Any) -> None:
    """A worker died or was removed: drop its live gauges from the merged metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class InventoryServer(BaseApplication):  # type: ignore[misc]
    """gunicorn configured in code; each worker builds its own app (and connections) after fork."""

    def __init__(self, *, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            # Settings of newer gunicorn releases (the control socket) are skipped on older ones.
            if value is not None and key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from app.main import create_app

        return create_app(self.settings)


def prepare_metrics_dir(path: str | None) -> str:
    """Per-server folder for prometheus_client's multiprocess files, emptied at start. Must be in
    the environment before prometheus_client is first imported (it picks its mode then)."""
    directory = Path(path) if path else Path(tempfile.mkdtemp(prefix="inventory-metrics-"))
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return str(directory)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.serve", description=__doc__)
    parser.add_argument("--bind", default=os.environ.get("INVENTORY_BIND", "127.0.0.1:8000"))
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("INVENTORY_WEB_WORKERS", "2"))
    )
    parser.add_argument("--pidfile", default=os.environ.get("INVENTORY_PIDFILE"))
    parser.add_argument(
        "--control-socket",
        default=os.environ.get("INVENTORY_CONTROL_SOCKET"),
        help="gunicorn control socket (gunicornc); default: none",
    )
    parser.add_argument(
        "--metrics-dir",
        default=os.environ.get("INVENTORY_METRICS_DIR"),
        help="folder for multiprocess metrics (default: a new temporary folder)",
    )
    parser.add_argument("--migrate", action="store_true", help="apply the Alembic migrations first")
    parser.add_argument("--database-url", help="write DSN (INVENTORY_DATABASE_URL)")
    parser.add_argument("--replica-url", help="read DSN (INVENTORY_REPLICA_URL)")
    parser.add_argument("--redis-url", help="INVENTORY_REDIS_URL")
    parser.add_argument("--otlp-endpoint", help="OTLP/HTTP base URL (INVENTORY_OTLP_ENDPOINT)")
    parser.add_argument("--elasticsearch-url", help="INVENTORY_ELASTICSEARCH_URL")
    parser.add_argument(
        "--bench-endpoints", action="store_true", default=None, help="mount /api/v1/bench/*"
    )
    return parser.parse_args(argv)


def gunicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "bind": args.bind,
        "workers": args.workers,
        "worker_class": WORKER_CLASS,
        "pidfile": args.pidfile,
        "keepalive": 75,
        "timeout": 60,
        "graceful_timeout": 20,
        "backlog": 2048,
        "child_exit": _child_exit,
        "post_worker_init": _post_worker_init,
        "proc_name": "inventory-api",
        "accesslog": None,
        "control_socket": args.control_socket,
        "control_socket_disable": args.control_socket is None,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {
        key: value
        for key, value in {
            "database_url": args.database_url,
            "replica_url": args.replica_url,
            "redis_url": args.redis_url,
            "otlp_endpoint": args.otlp_endpoint,
            "elasticsearch_url": args.elasticsearch_url,
            "bench_endpoints": args.bench_endpoints,
        }.items()
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SystemExit(f"invalid settings (INVENTORY_* variables or options):\n{exc}") from exc
    prepare_metrics_dir(args.metrics_dir)
    if args.migrate:
        from app.migrate import upgrade

        upgrade(settings.database_url, create=True)
    # Import the app's modules (not the app: no connections, threads or exporters) in the master,
    # so that every worker — the first ones and those added later by TTIN — forks with them
    # loaded and serves sooner. prometheus_client is imported after the metrics folder is set.
    importlib.import_module("app.main")
    # ...and frozen: the workers inherit the modules in the permanent generation (see freeze_heap).
    freeze_heap()
    InventoryServer(settings=settings, options=gunicorn_options(args)).run()


if __name__ == "__main__":
    main()
