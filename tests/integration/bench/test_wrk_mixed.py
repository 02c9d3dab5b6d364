"""The mixed load's wrk script (``make bench-api``'s closed-loop maximum of the mix) run by the
real wrk against a loopback server that records every request: the routes come at the mix's
shares, every movement has its own Idempotency-Key, every body is what the API expects.

Missing wrk: a failure in CI mode (``CI=true`` / ``REQUIRE_BACKENDS=1``), else a skip.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from bench import bench_api
from tests.support.backends import backends_required
from tests.support.tiny_http import serving

pytestmark = pytest.mark.integration


@dataclass
class Seen:
    url: str = ""
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def recording_server() -> Iterator[Seen]:
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _record(self, status: int) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with seen.lock:
                seen.requests.append((self.command, self.path, dict(self.headers), body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_GET(self) -> None:
            self._record(200)

        def do_POST(self) -> None:
            self._record(202 if self.path.endswith("/movements") else 201)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        seen.url = f"{url}/"
        yield seen


@pytest.fixture(scope="module")
def wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        message = "wrk is not installed (make bootstrap)"
        if backends_required():
            pytest.fail(f"{message} (CI mode: a missing tool is a failure)", pytrace=False)
        pytest.skip(message)
    return found


def test_mixed_script_sends_the_mix_with_valid_bodies_and_unique_keys(
    wrk: str, tmp_path: Path
) -> None:
    shares = bench_api.mixed_shares()
    skus = ["SKU-A", "SKU-B", "SKU-C"]
    script = bench_api.wrk_lua_mixed(
        run="run1", skus=skus, headers=[("Authorization", "Bearer t0k")], shares=shares
    )
    with recording_server() as seen:
        phase = bench_api.run_wrk(
            url=seen.url, script=script, connections=4, duration=1, tmp=tmp_path
        )
        requests = list(seen.requests)

    assert phase.errors == 0
    assert 200 <= phase.ok <= len(requests)
    routes: Counter[str] = Counter()
    keys: list[str] = []
    for method, path, headers, body in requests:
        assert headers["Authorization"] == "Bearer t0k"
        if method == "GET":
            assert path.removeprefix("/api/v1/stock/") in skus
            routes[bench_api.READ] += 1
            continue
        document = json.loads(body)
        assert headers["Content-Type"] == "application/json"
        assert document["sku"] in skus
        assert document["warehouse"] == "W1"
        assert document["quantity"] == 1
        if path == "/api/v1/movements":
            assert document["kind"] in {"receive", "ship"}
            keys.append(headers["Idempotency-Key"])
            routes[bench_api.MOVEMENT] += 1
        else:
            assert path == "/api/v1/reservations"
            assert document["ttl_seconds"] == 120
            routes[bench_api.RESERVATION] += 1
    # Each route at its share of the mix (binomial spread: a few hundred requests at least).
    total = sum(routes.values())
    for route, share in shares.items():
        assert routes[route] / total == pytest.approx(share, abs=0.05), routes
    assert len(set(keys)) == len(keys)
    assert all(key.startswith("run1-mixed-") for key in keys)
