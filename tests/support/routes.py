"""Every route an app answers, for tests that must cover all of them (authentication).

FastAPI before 0.130 lists included routes flat in ``app.routes``; later versions keep each
included router as one entry (``original_router`` + ``include_context.prefix``). Both are
walked, and the result is checked against the OpenAPI document so that a change in FastAPI
cannot make the walk silently miss routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

#: What path parameters are filled with.
PLACEHOLDER = "X1"


def _walk(routes: Iterable[Any], prefix: str) -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield method, prefix + route.path


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route of ``app``, probes and docs included."""
    found = sorted(set(_walk(app.routes, "")))
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi().get("paths", {}).items()
        for method in operations
        if method in {"get", "put", "post", "patch", "delete"}
    }
    missing = documented - set(found)
    assert not missing, f"the route walk missed documented operations: {sorted(missing)}"
    return found


def concrete(path: str) -> str:
    """A path template with its parameters filled in (``/stock/{sku}`` → ``/stock/X1``)."""
    out, depth = [], 0
    for char in path:
        if char == "{":
            depth += 1
            if depth == 1:
                out.append(PLACEHOLDER)
        elif char == "}":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)
