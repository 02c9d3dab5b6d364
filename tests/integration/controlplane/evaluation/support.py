"""Helpers of the evaluation integration tests: a scrape target a test can make burn, and the
control plane as ``controlplane serve`` runs it (a real process on a free port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from controlplane.core.processes import free_ports, tail
from controlplane.core.security import Role
from controlplane.store.database import Database
from controlplane.store.tokens import create_token

REPO = Path(__file__).resolve().parents[4]
SPECS = REPO / "slo" / "specs"


def eventually(check: Callable[[], Any], *, timeout: float = 60.0, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not met within {timeout} s (last: {last!r})")


class InventoryTarget:
    """``/metrics`` of a pretend inventory service: the series every shipped Prometheus SLO
    reads (HTTP requests, apply lag, worker outcomes), growing with time at ``rate`` events/s.

    ``burn(share)`` makes that share of the requests answer 500 from now on; 0 is healthy.
    """

    def __init__(self, *, rate: float = 50.0) -> None:
        self.rate = rate
        self.error_share = 0.0
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._ok = self._errors = self._applied = 1000.0

    def burn(self, share: float) -> None:
        with self._lock:
            self._advance()
            self.error_share = share

    def _advance(self) -> None:
        now = time.monotonic()
        events = self.rate * (now - self._last)
        self._last = now
        self._ok += events * (1 - self.error_share)
        self._errors += events * self.error_share
        self._applied += events

    def exposition(self) -> str:
        with self._lock:
            self._advance()
            ok, errors, applied = self._ok, self._errors, self._applied
        http = "http_server_request_duration_seconds"
        get = 'service="inventory",method="GET",status_code="200"'
        lines = [
            f"{http}_count{{{get}}} {ok}",
            f'{http}_bucket{{{get},le="0.25"}} {ok}',
            f'{http}_bucket{{{get},le="+Inf"}} {ok}',
            f'{http}_count{{service="inventory",method="GET",status_code="500"}} {errors}',
            f"inventory_movements_apply_lag_seconds_count {applied}",
            f'inventory_movements_apply_lag_seconds_bucket{{le="5"}} {applied}',
            f'inventory_movements_apply_lag_seconds_bucket{{le="+Inf"}} {applied}',
            f'inventory_worker_apply_total{{outcome="applied"}} {applied}',
        ]
        return "\n".join(lines) + "\n"


@contextmanager
def serve_target(target: InventoryTarget) -> Iterator[str]:
    """Serve ``target`` on a free loopback port; yields ``host:port`` for a scrape config."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = target.exposition().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class ServeProcess:
    """``python -m controlplane.commands.serve`` with ``CONTROLPLANE_*`` settings."""

    def __init__(self, *, settings: dict[str, str], log_path: Path, port: int | None = None):
        self.settings = settings
        self.log_path = log_path
        self.port = port or free_ports(1)[0]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
        env.update({f"CONTROLPLANE_{k.upper()}": v for k, v in self.settings.items()})
        env["CONTROLPLANE_PORT"] = str(self.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controlplane.commands.serve", "--log-level", "info"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"controlplane serve exited with {self.process.returncode}:\n" + self.log_tail()
                )
            try:
                httpx.get(f"{self.url}/api/v1/health/live", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"controlplane serve not answering:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def viewer_token(database_url: str) -> dict[str, str]:
    """Migrate the store at ``database_url`` and create a viewer token; its request headers."""
    database = Database.from_url(database_url)
    try:
        database.migrate()
        with database.writer() as session:
            _, secret = create_token(
                session,
                name=f"viewer-{time.monotonic_ns()}",
                role=Role.VIEWER,
                at=datetime.now(UTC),
            )
    finally:
        database.dispose()
    return {"Authorization": f"Bearer {secret}"}


def api_get(url: str, headers: dict[str, str], **params: Any) -> Any:
    answer = httpx.get(url, headers=headers, params=params, timeout=30)
    answer.raise_for_status()
    return answer.json()
