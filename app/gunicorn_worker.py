"""The gunicorn worker class that runs the ASGI app on uvicorn (uvloop + httptools).

uvicorn's bundled ``uvicorn.workers`` module still works but warns that it moved to the separate
``uvicorn-worker`` distribution; it is imported with that warning silenced until that package is a
dependency of the project.

uvicorn writes a response's status line and headers in one call to the transport and its body in
another, and uvloop sends each at once: two ``write`` system calls and two TCP segments per
response, each waking the client. :class:`CoalescingHttpToolsProtocol` gives uvicorn a transport
that sends everything written during one turn of the event loop in a single call, so a response
leaves as one segment.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker


class CoalescedWrites:
    """Wraps a transport: ``write`` collects the data, which is sent in one ``write`` call right
    after the current callback of the event loop (before ``close``, if that comes first). Every
    other method is the transport's own."""

    __slots__ = ("_loop", "_pending", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`CoalescedWrites` transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalesced = CoalescedWrites(transport, self.loop)
        super().connection_made(coalesced)  # type: ignore[arg-type]


class InventoryUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 - overrides the base class attribute
        "loop": "uvloop",
        "http": CoalescingHttpToolsProtocol,
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
    }
