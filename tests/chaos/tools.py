"""What the fault tests inject faults with, and how they count what came through.

* :class:`FaultProxy`: a TCP proxy on loopback between a client and a real server. ``pass``
  forwards; ``garbage`` answers every new request itself with a 200 whose body is not what the
  server speaks (random bytes, cut JSON, JSON of the wrong shape); ``blackhole`` keeps every
  connection open and forwards nothing either way (a network partition: no reset, no answer).
* :class:`ServeProcess`: ``controlplane serve`` as a process that can be killed, frozen
  (SIGSTOP) and thawed.
* :class:`Ingest`: stock movements posted at a steady rate by client threads, each acknowledged
  one (202) remembered with its key and quantity; a refused or failed one is posted again with
  the same ``Idempotency-Key``, as a client should. :func:`reconcile` compares what was
  acknowledged with what PostgreSQL applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from controlplane.core.processes import free_ports
from tests.integration.controlplane.evaluation import support

Mode = Literal["pass", "garbage", "blackhole"]

#: What a broken server might answer: not JSON, JSON cut short, JSON of another shape, a NaN.
GARBAGE_BODIES = (
    b"\x00\xff\xfe garbage \x9c\x01",
    b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"val',
    b'{"status":"success","data":{"resultType":"matrix","result":"not a list"}}',
    b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},'
    b'"value":[1,"NaN"]}]}}',
    b"<html><body>502 upstream confused</body></html>",
)


class FaultProxy:
    """A TCP proxy from a free loopback port to ``upstream`` (``host:port``), in a thread."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.port = free_ports(1)[0]
        self.mode: Mode = "pass"
        self.garbage_answers = 0
        self._bodies = itertools.cycle(GARBAGE_BODIES)
        self._loop = asyncio.new_event_loop()
        self._flowing: asyncio.Event | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def set_mode(self, mode: Mode) -> None:
        """Switch: open connections are cut on ``garbage`` (the next request meets it), held
        without a byte on ``blackhole``, and flow again on ``pass``."""
        asyncio.run_coroutine_threadsafe(self._switch(mode), self._loop).result(timeout=10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # -- in the proxy's loop -------------------------------------------------------------------
    async def _serve(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _switch(self, mode: Mode) -> None:
        assert self._flowing is not None
        self.mode = mode
        if mode == "pass":
            self._flowing.set()
            return
        self._flowing.clear()
        if mode == "garbage":
            for writer in list(self._connections):
                writer.close()

    async def _close(self) -> None:
        if self._flowing is not None:
            self._flowing.set()
        for writer in list(self._connections):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            if self.mode == "garbage":
                await self._answer_garbage(reader, writer)
                return
            assert self._flowing is not None
            await self._flowing.wait()  # a partition accepts and then says nothing
            if self.mode == "garbage":
                await self._answer_garbage(reader, writer)
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            self._connections.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._connections.discard(up_writer)
                up_writer.close()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _pipe(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        while True:
            chunk = await source.read(65536)
            await self._flowing.wait()
            if not chunk or self.mode == "garbage":
                target.close()
                return
            target.write(chunk)
            await target.drain()

    async def _answer_garbage(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await reader.readuntil(b"\r\n\r\n")
        body = next(self._bodies)
        self.garbage_answers += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()


class ServeProcess(support.ServeProcess):
    """``controlplane serve`` that a test can kill, freeze and thaw."""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, no lease released."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def freeze(self) -> None:
        os.killpg(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()  # a stopped process would not see SIGTERM
        super().stop()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class IngestReport:
    """What the clients saw: acknowledged movements (key → quantity) and every answer."""

    acked: dict[str, int] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    #: Keys posted and never acknowledged (the test ended while they were being retried).
    unacked: set[str] = field(default_factory=set)


class Ingest:
    """``threads`` clients posting receives of ``sku`` at ``warehouse``, each about ``rate``
    movements a second; a movement not acknowledged is retried with its key until it is."""

    def __init__(
        self,
        *,
        api_url: str,
        sku: str,
        warehouse: str = "W1",
        threads: int = 4,
        rate: float = 25.0,
    ) -> None:
        self.api_url = api_url
        self.sku = sku
        self.warehouse = warehouse
        self.threads = threads
        self.interval = 1.0 / rate
        self.report = IngestReport()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._quantities = itertools.cycle((1, 2, 3, 5, 7))

    def start(self) -> Ingest:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"ingest-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def acked(self) -> int:
        with self._lock:
            return len(self.report.acked)

    def stop(self) -> IngestReport:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=30)
        return self.report

    def _note(self, answer: str) -> None:
        with self._lock:
            self.report.answers[answer] = self.report.answers.get(answer, 0) + 1

    def _run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=3.0) as client:
            pending: tuple[str, int] | None = None
            while not self._stop.is_set():
                if pending is None:
                    with self._lock:
                        quantity = next(self._quantities)
                    pending = (uuid.uuid4().hex, quantity)
                key, quantity = pending
                try:
                    answer = client.post(
                        "/api/v1/movements",
                        json={
                            "kind": "receive",
                            "sku": self.sku,
                            "warehouse": self.warehouse,
                            "quantity": quantity,
                        },
                        headers={"Idempotency-Key": key},
                    )
                    status = str(answer.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self._note(status)
                if status == "202":
                    with self._lock:
                        self.report.acked[key] = quantity
                    pending = None
                self._stop.wait(self.interval)
            if pending is not None:
                with self._lock:
                    self.report.unacked.add(pending[0])


@dataclass(frozen=True)
class Reconciled:
    acked: int
    applied: int
    #: Acknowledged (202) and not applied.
    acked_lost: int
    #: Keys applied more than once (the unique key makes this 0 unless something is broken),
    #: plus the units by which the stock exceeds the movements applied.
    applied_twice: int
    #: Applied without having been posted by the clients (never expected).
    unknown: int
    on_hand: int
    expected_on_hand: int


Query = Callable[[str, Any], list[tuple[Any, ...]]]


def reconcile(query: Query, *, sku: str, warehouse: str, report: IngestReport) -> Reconciled:
    """Acknowledged against applied, by key; the stock level against the movements applied
    (``query``: SQL and parameters on the inventory database, rows back)."""
    rows = query(
        "SELECT idempotency_key, count(*), sum(quantity) FROM movements "
        "WHERE sku = %s AND warehouse = %s GROUP BY idempotency_key",
        (sku, warehouse),
    )
    applied = {str(key): (int(count), int(total)) for key, count, total in rows}
    stock = query(
        "SELECT on_hand FROM stock_levels WHERE sku = %s AND warehouse = %s", (sku, warehouse)
    )
    on_hand = int(stock[0][0]) if stock else 0
    posted = set(report.acked) | report.unacked
    expected = sum(total // count for count, total in applied.values())
    return Reconciled(
        acked=len(report.acked),
        applied=len(applied),
        acked_lost=len(set(report.acked) - set(applied)),
        applied_twice=sum(count - 1 for count, _ in applied.values()) + max(on_hand - expected, 0),
        unknown=len(set(applied) - posted),
        on_hand=on_hand,
        expected_on_hand=expected,
    )


def open_findings(url: str, headers: dict[str, str], *, kind: str) -> set[str]:
    """Subjects of the open findings of ``kind`` (``GET /api/v1/findings``)."""
    answer = httpx.get(
        f"{url}/api/v1/findings",
        params={"open": "true", "kind": kind},
        headers=headers,
        timeout=10,
    )
    answer.raise_for_status()
    return {finding["subject"] for finding in answer.json()}


def summary(answers: dict[str, int]) -> str:
    return json.dumps(dict(sorted(answers.items())))
