"""A small asyncio Redis client for the API's hot paths (RESP2 over one pipelined connection).

Why not redis-py's asyncio client: on this workload it spends several hundred microseconds of
Python per command (connection-pool checkout, retry and observability layers), more than the
rest of a request. Here every command is written straight to one connection and answered in
order by a protocol parser, so concurrent requests of a process share the connection and a
command costs a few microseconds of Python. Commands are traced (a client span per command, as
the Redis instrumentation does) when the current request is sampled.

The workers keep using redis-py (blocking, batch-sized work).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry import trace

Arg = str | bytes | int | float
Reply = Any

_tracer = trace.get_tracer("app.core.resp")


class RespError(Exception):
    """An error reply of the server (``-ERR …``, ``-NOSCRIPT …``); the connection stays usable."""

    @property
    def kind(self) -> str:
        return str(self).split(" ", 1)[0]


class RespConnectionError(ConnectionError):
    """The connection failed, was closed, or a reply did not come in time."""


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    db: int
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"only redis:// URLs are supported here, not {parts.scheme}://")
        db = int(parts.path.strip("/") or 0)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=db,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def encode_command(args: Sequence[Arg]) -> bytes:
    """RESP2 array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class _Incomplete(Exception):
    pass


def parse_reply(buffer: bytes | bytearray, start: int) -> tuple[Reply, int]:
    """Parse one RESP2 reply at ``start``; returns (reply, next position) or raises _Incomplete.
    Error replies are returned as :class:`RespError` instances (not raised)."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        raise _Incomplete
    kind = buffer[start : start + 1]
    line = bytes(buffer[start + 1 : end])
    pos = end + 2
    if kind == b"+":
        return line, pos
    if kind == b"-":
        return RespError(line.decode(errors="replace")), pos
    if kind == b":":
        return int(line), pos
    if kind == b"$":
        length = int(line)
        if length < 0:
            return None, pos
        if len(buffer) < pos + length + 2:
            raise _Incomplete
        return bytes(buffer[pos : pos + length]), pos + length + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = parse_reply(buffer, pos)
            items.append(item)
        return items, pos
    raise RespConnectionError(f"unexpected reply type {kind!r}")


class _Protocol(asyncio.Protocol):
    def __init__(
        self,
        on_push: Callable[[Reply], None] | None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.on_close = on_close
        self.transport: Any = None
        self.pending: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self.buffer = bytearray()
        self.on_push = on_push
        self.loop = asyncio.get_running_loop()
        self.closed = self.loop.create_future()
        self.outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # an asyncio.Transport, or uvloop's own TCPTransport

    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)
        pos = 0
        buffer = self.buffer
        while pos < len(buffer):
            try:
                reply, pos_after = parse_reply(buffer, pos)
            except _Incomplete:
                break
            pos = pos_after
            self._deliver(reply)
        if pos:
            del buffer[:pos]

    def _deliver(self, reply: Reply) -> None:
        if (
            self.on_push is not None
            and isinstance(reply, list)
            and reply
            and reply[0] in (b"message", b"invalidate")
        ):
            self.on_push(reply)
            return
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_result(reply)
                return

    def connection_lost(self, exc: Exception | None) -> None:
        error = RespConnectionError(f"connection to redis lost: {exc or 'closed'}")
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)
        if self.on_close is not None:
            self.on_close()

    def send(self, payload: bytes, count: int) -> list[asyncio.Future[Reply]]:
        if self.transport is None or self.transport.is_closing():
            raise RespConnectionError("connection to redis is closed")
        futures = [self.loop.create_future() for _ in range(count)]
        self.pending.extend(futures)
        # Auto-pipelining: commands issued in the same turn of the event loop (by concurrent
        # requests) leave in one write, and Redis answers them in one read.
        if not self.outgoing:
            self.loop.call_soon(self._flush)
        self.outgoing.append(payload)
        return futures

    def _flush(self) -> None:
        payload = b"".join(self.outgoing)
        self.outgoing.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)


class RespClient:
    """One lazily (re)connected, pipelined connection. Safe for concurrent use by many tasks."""

    def __init__(
        self,
        *,
        url: str,
        timeout: float,
        on_push: Callable[[Reply], None] | None = None,
        on_close: Callable[[], None] | None = None,
        name: str = "inventory-api",
    ) -> None:
        self.on_close = on_close
        self.address = RedisAddress.from_url(url)
        self.timeout = timeout
        self.on_push = on_push
        self.name = name
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._scripts: dict[str, bytes] = {}

    @property
    def connected(self) -> bool:
        protocol = self._protocol
        return (
            protocol is not None
            and protocol.transport is not None
            and not protocol.transport.is_closing()
        )

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.connected:
                assert self._protocol is not None
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout):
                    _transport, protocol = await loop.create_connection(
                        lambda: _Protocol(self.on_push, self.on_close),
                        self.address.host,
                        self.address.port,
                    )
            except (OSError, TimeoutError) as exc:
                raise RespConnectionError(f"cannot connect to redis: {exc!r}") from exc
            setup: list[list[Arg]] = []
            if self.address.password is not None:
                auth: list[Arg] = ["AUTH"]
                if self.address.username:
                    auth.append(self.address.username)
                auth.append(self.address.password)
                setup.append(auth)
            if self.address.db:
                setup.append(["SELECT", self.address.db])
            setup.append(["CLIENT", "SETNAME", self.name])
            payload = b"".join(encode_command(cmd) for cmd in setup)
            replies = await self._await_all(protocol, protocol.send(payload, len(setup)))
            for reply in replies:
                if isinstance(reply, RespError):
                    if protocol.transport is not None:
                        protocol.transport.close()
                    raise RespConnectionError(f"redis refused the connection setup: {reply}")
            self._protocol = protocol
            return protocol

    async def _await_all(
        self, protocol: _Protocol, futures: list[asyncio.Future[Reply]]
    ) -> list[Reply]:
        try:
            async with asyncio.timeout(self.timeout):
                return [await future for future in futures]
        except TimeoutError as exc:
            # Replies may still come and would be matched to later commands: start afresh.
            if protocol.transport is not None:
                protocol.transport.abort()
            raise RespConnectionError(f"no reply from redis within {self.timeout}s") from exc

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Reply]:
        """Send several commands at once; replies in order (error replies as RespError)."""
        if not commands:
            return []
        protocol = self._protocol if self.connected else await self._connect()
        assert protocol is not None
        payload = b"".join(encode_command(cmd) for cmd in commands)
        span = trace.get_current_span()
        if span.is_recording():
            names = " ".join(sorted({str(cmd[0]).upper() for cmd in commands}))
            with _tracer.start_as_current_span(
                names if len(commands) == 1 else f"PIPELINE {names}",
                kind=trace.SpanKind.CLIENT,
                attributes={
                    "db.system": "redis",
                    "db.operation.batch.size": len(commands),
                    "server.address": self.address.host,
                    "server.port": self.address.port,
                },
            ):
                return await self._await_all(protocol, protocol.send(payload, len(commands)))
        return await self._await_all(protocol, protocol.send(payload, len(commands)))

    async def execute(self, *args: Arg) -> Reply:
        """One command; raises RespError for an error reply."""
        (reply,) = await self.pipeline([args])
        if isinstance(reply, RespError):
            raise reply
        return reply

    async def evalsha(self, script: str, *, keys: Sequence[Arg], args: Sequence[Arg]) -> Reply:
        """Run a Lua script by its SHA, loading it the first time (or after a server restart)."""
        sha = self._scripts.get(script)
        if sha is None:
            sha = await self.execute("SCRIPT", "LOAD", script)
            self._scripts[script] = sha
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except RespError as exc:
            if exc.kind != "NOSCRIPT":
                raise
            self._scripts.pop(script, None)
            sha = await self.execute("SCRIPT", "LOAD", script)
            self._scripts[script] = sha
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)

    async def wait_closed(self) -> None:
        if self._protocol is not None:
            await self._protocol.closed

    async def close(self) -> None:
        protocol = self._protocol
        self._protocol = None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await protocol.closed


#: What callers catch: the server or the connection failed.
RESP_ERRORS: tuple[type[Exception], ...] = (RespConnectionError, RespError)
