"""A small HTTP/1.1 closed-loop load generator on raw asyncio streams (keep-alive connections),
the fallback of ``make bench-api`` where ``wrk`` is not installed (``--load python``).

:func:`closed_loop`: ``connections`` clients send back-to-back for ``duration`` seconds; gives the
maximum throughput. Open-loop (constant-rate) load comes from vegeta (``bench/vegeta.py``).
Bounded by its duration. Only for loopback targets.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

RequestFactory = Callable[[], bytes]


def get_request(path: str, host: str, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode()


def post_request(path: str, *, host: str, body: bytes, headers: Sequence[tuple[str, str]]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{head}\r\n"
    ).encode() + body


@dataclass
class Result:
    duration: float
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def count(self, *codes: int) -> int:
        return sum(n for code, n in self.statuses.items() if code in codes)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def closed_loop(
    *,
    host: str,
    port: int,
    make_request: RequestFactory,
    connections: int,
    duration: float,
    keep_latencies: bool = False,
) -> Result:
    deadline = time.perf_counter() + duration
    result = Result(duration=duration)

    async def client() -> None:
        conn = _Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    status = await conn.send(make_request())
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    result.errors += 1
                    conn.close()
                    continue
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if keep_latencies:
                    result.latencies.append(time.perf_counter() - started)
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    result.duration = time.perf_counter() - started
    return result


def run(coroutine: Coroutine[Any, Any, Result]) -> Result:
    """Run a load coroutine on uvloop when it is installed (less CPU taken from the server)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def sku_picker(skus: Sequence[str], seed: int = 7) -> Callable[[], str]:
    rng = random.Random(seed)
    return lambda: skus[rng.randrange(len(skus))]
