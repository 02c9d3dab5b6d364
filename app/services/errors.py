"""Domain errors: what went wrong in inventory terms. Only the API layer maps them to HTTP."""

from __future__ import annotations


class InventoryError(Exception):
    """Base of every domain error; ``code`` is a stable machine-readable name."""

    code = "inventory_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(InventoryError):
    """The thing named in the path does not exist."""

    code = "not_found"


class UnknownReference(InventoryError):
    """A request body names an item or warehouse that does not exist."""

    code = "unknown_reference"


class AlreadyExists(InventoryError):
    code = "already_exists"


class InsufficientStock(InventoryError):
    """Applying the operation would make available stock negative."""

    code = "insufficient_stock"


class InvalidState(InventoryError):
    """The reservation is not in a state that allows the operation."""

    code = "invalid_state"


class IdempotencyConflict(InventoryError):
    """The idempotency key was used before with a different request body."""

    code = "idempotency_conflict"


class InvalidRequest(InventoryError):
    """A rule the schema cannot express (e.g. a transfer to the same warehouse)."""

    code = "invalid_request"


class Unavailable(InventoryError):
    """A dependency needed to accept the request durably is down; the client should retry."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
