"""The root of the control plane's own errors.

Every package raises its own subclasses (``SourceError``, ``StoreError``, ``PolicyError``,
``FencingFailed``, ``ActuatorError`` ...), chaining the cause. Catching
:class:`ControlPlaneError` catches any of them and nothing else (no programming error, no
library error that was not translated); the API turns them into answers in one handler
(``controlplane.api.errors``), the CLI into a message and an exit code.
"""

from __future__ import annotations

__all__ = ["ControlPlaneError"]


class ControlPlaneError(Exception):
    """A failure of the control plane that its callers can act on; the message says why."""
