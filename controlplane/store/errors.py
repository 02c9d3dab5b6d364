"""Errors of the control plane store."""

from __future__ import annotations

from controlplane.core.errors import ControlPlaneError

__all__ = ["DuplicateTokenName", "FencingTokenStale", "StoreError", "UnknownTokenName"]


class StoreError(ControlPlaneError):
    """Base class for store failures the callers can act on."""


class DuplicateTokenName(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"an active API token named {name!r} already exists")
        self.name = name


class UnknownTokenName(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no active API token named {name!r}")
        self.name = name


class FencingTokenStale(StoreError):
    """A write carried a fencing token that is not the lease's current one (another replica has
    taken over), or whose lease has expired (its holder stalled and may be replaced any moment)."""

    def __init__(
        self, *, name: str, token: int, current: int | None, expired: bool = False
    ) -> None:
        why = (
            "its lease has expired"
            if expired
            else f"current: {current}; another replica holds the leadership"
        )
        super().__init__(f"fencing token {token} of {name!r} is stale ({why})")
        self.name = name
        self.token = token
        self.current = current
        self.expired = expired
