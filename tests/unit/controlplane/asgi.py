"""A synchronous client for an ASGI app, lifespan included (httpx + an anyio blocking portal).

Starlette's TestClient warns that its httpx support is deprecated, and warnings are errors here.
"""

from __future__ import annotations

import contextlib
from functools import partial
from types import TracebackType
from typing import Any

import anyio.from_thread
import httpx
from fastapi import FastAPI


class AppClient:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._stack = contextlib.ExitStack()
        self._client: httpx.AsyncClient | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None

    def __enter__(self) -> AppClient:
        portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._stack.enter_context(
            portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app))
        )
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
        )
        self._stack.callback(lambda: portal.call(client.aclose))
        self._portal, self._client = portal, client
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self._portal is None or self._client is None:
            raise RuntimeError("use the client inside `with AppClient(app):`")
        return self._portal.call(partial(self._client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)
