"""Errors of the local stack runner."""

from __future__ import annotations

from controlplane.core.errors import ControlPlaneError


class StackError(ControlPlaneError):
    """Base class for local stack failures."""


class BackendStartError(StackError):
    """A backend could not be started or did not become healthy; names the backend."""

    def __init__(self, backend: str, reason: str, *, log_tail: str = "") -> None:
        self.backend = backend
        self.reason = reason
        self.log_tail = log_tail
        message = f"{backend}: {reason}"
        if log_tail:
            message += f"\n--- last lines of the {backend} log ---\n{log_tail}"
        super().__init__(message)
