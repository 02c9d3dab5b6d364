"""The console's one way to its data: the control plane's typed client.

The client lives in :mod:`controlplane.client` (the drill commands use it too); the console
builds one in its composition root (``dashboards.app``) and injects it into every page. Pages
catch ``ControlPlaneError``: any failure to get what they asked the control plane for.
"""

from __future__ import annotations

from controlplane.client.http import (
    API_PREFIX,
    ControlPlaneClient,
    ControlPlaneRefused,
    ControlPlaneUnreachable,
    Forbidden,
    NotFound,
    RouteNotServed,
    Unauthorized,
    Unavailable,
    UnreadableAnswer,
)
from controlplane.client.http import ClientError as ControlPlaneError

__all__ = [
    "API_PREFIX",
    "ControlPlaneClient",
    "ControlPlaneError",
    "ControlPlaneRefused",
    "ControlPlaneUnreachable",
    "Forbidden",
    "NotFound",
    "RouteNotServed",
    "Unauthorized",
    "Unavailable",
    "UnreadableAnswer",
]
