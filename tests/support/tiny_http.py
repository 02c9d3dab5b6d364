"""A tiny HTTP server on a free loopback port, for tests of load generators.

Routes: ``GET /fast`` answers 200 at once, ``GET /slow`` answers 200 after ``SLOW_SECONDS``,
``POST /items`` answers 201 echoing the body's length, anything else 404. It counts what it
answered by (method, path, status).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_SECONDS = 0.05


@dataclass
class Served:
    url: str
    answered: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def tiny_server() -> Iterator[Served]:
    served = Served(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK would hold every body back ~40 ms.
        disable_nagle_algorithm = True

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with served.lock:
                served.answered[(self.command, self.path, status)] += 1

        def do_GET(self) -> None:
            if self.path == "/fast":
                self._answer(200, b'{"ok":true}')
            elif self.path == "/slow":
                time.sleep(SLOW_SECONDS)
                self._answer(200, b'{"ok":true}')
            else:
                self._answer(404, b'{"detail":"not found"}')

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path == "/items":
                self._answer(201, b'{"received":%d}' % len(body))
            else:
                self._answer(404, b'{"detail":"not found"}')

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        served.url = url
        yield served


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served by a threading server on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
