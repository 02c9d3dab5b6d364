"""The control plane HTTP API (FastAPI, ``/api/v1``); see ``controlplane/README.md``."""

from controlplane.api.app import API_PREFIX, ApiExtension, BackgroundService, create_app

__all__ = ["API_PREFIX", "ApiExtension", "BackgroundService", "create_app"]
