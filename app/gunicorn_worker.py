"""The gunicorn worker class that runs the ASGI app on uvicorn (uvloop + httptools).

uvicorn's bundled ``uvicorn.workers`` module still works but warns that it moved to the separate
``uvicorn-worker`` distribution; it is imported with that warning silenced until that package is a
dependency of the project.
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker


class InventoryUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 - overrides the base class attribute
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
    }
