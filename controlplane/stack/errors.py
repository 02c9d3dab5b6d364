"""Errors of the local stack runner (a backend that does not start raises
:class:`~controlplane.core.processes.BackendStartError`)."""

from __future__ import annotations

from controlplane.core.errors import ControlPlaneError


class StackError(ControlPlaneError):
    """Base class for local stack failures."""
