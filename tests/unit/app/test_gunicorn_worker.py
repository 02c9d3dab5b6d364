"""The API's HTTP protocol sends each response (status line, headers and body) in one write."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.gunicorn_worker import CoalescingHttpToolsProtocol, InventoryUvicornWorker


class RecordingTransport(asyncio.Transport):
    """Stands in for the socket: records what is written, one entry per call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    body = b'{"path":"%s"}' % scope["path"].encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def settle(until: Any) -> None:
    for _ in range(200):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError("the response did not come")


def test_each_response_is_one_write_and_close_sends_what_is_pending_first() -> None:
    async def scenario() -> RecordingTransport:
        config = Config(app=app, http=CoalescingHttpToolsProtocol, lifespan="off")
        protocol = CoalescingHttpToolsProtocol(
            config=config, server_state=ServerState(), app_state={}
        )
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET /first HTTP/1.1\r\nHost: api\r\n\r\n")
        await settle(lambda: len(transport.writes) == 1)
        protocol.data_received(b"GET /second HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        await settle(lambda: transport.closed)
        return transport

    transport = asyncio.run(scenario())
    assert len(transport.writes) == 2, transport.writes
    first, second = transport.writes
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert first.endswith(b'\r\n\r\n{"path":"/first"}')
    assert second.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in second
    assert second.endswith(b'{"path":"/second"}')


def test_the_gunicorn_worker_serves_with_that_protocol() -> None:
    assert InventoryUvicornWorker.CONFIG_KWARGS["http"] is CoalescingHttpToolsProtocol
