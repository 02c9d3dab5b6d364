"""Composition root of the control plane API with the Alertmanager receiver mounted.

The control plane cannot import this package (layers: ``alerts`` → ``controlplane``), so the
receiver reaches the API as an :class:`~controlplane.api.ApiExtension` built here. Run it with

    uvicorn --factory alerts.wiring:create_app --host 127.0.0.1 --port 8080

(settings from ``CONTROLPLANE_*`` variables), or pass ``api_extensions(settings)`` to
``controlplane.api.create_app`` together with other services (the scheduler).
"""

from __future__ import annotations

from collections.abc import Sequence

from alerts.receiver import webhook_extension
from controlplane.api import ApiExtension, BackgroundService
from controlplane.api import create_app as create_controlplane_app
from controlplane.api.app import ControlPlaneAPI
from controlplane.core.config import ControlPlaneSettings

__all__ = ["api_extensions", "create_app"]


def api_extensions(settings: ControlPlaneSettings) -> list[ApiExtension]:
    """The routers the ``alerts`` package adds to the control plane API."""
    return [webhook_extension(settings)]


def create_app(
    settings: ControlPlaneSettings | None = None,
    *,
    services: Sequence[BackgroundService] = (),
) -> ControlPlaneAPI:
    """The full control plane API (settings from the environment when not given)."""
    resolved = settings if settings is not None else ControlPlaneSettings()
    return create_controlplane_app(resolved, extensions=api_extensions(resolved), services=services)
