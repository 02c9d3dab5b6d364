"""Stock movement models: what a client posts, what it gets back, what the status URL says."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from app.models.common import NO_NUL, Code, StrictModel

MovementKind = Literal["receive", "ship", "transfer", "adjust"]
MovementState = Literal["accepted", "applied", "dead_letter", "duplicate"]

#: Largest quantity one movement may carry.
MAX_QUANTITY = 1_000_000_000


class MovementCreate(StrictModel):
    """receive / ship / transfer take a positive quantity; adjust takes a signed, non-zero delta."""

    kind: MovementKind
    sku: Code
    warehouse: Code
    to_warehouse: Code | None = Field(default=None, description="Destination of a transfer.")
    quantity: int = Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY)
    reason: str | None = Field(default=None, max_length=500, pattern=NO_NUL)

    @model_validator(mode="after")
    def _rules(self) -> MovementCreate:
        if self.kind == "adjust":
            if self.quantity == 0:
                raise ValueError("an adjustment needs a non-zero quantity")
        elif self.quantity <= 0:
            raise ValueError(f"quantity of a {self.kind} must be positive")
        if self.kind == "transfer":
            if self.to_warehouse is None:
                raise ValueError("a transfer needs to_warehouse")
            if self.to_warehouse == self.warehouse:
                raise ValueError("a transfer needs two different warehouses")
        elif self.to_warehouse is not None:
            raise ValueError(f"to_warehouse is only allowed on a transfer, not a {self.kind}")
        return self


class MovementAccepted(BaseModel):
    id: UUID
    status: MovementState
    status_url: str
    replayed: bool = Field(
        description="True when this idempotency key was seen before and nothing new was queued."
    )


class MovementStatus(BaseModel):
    id: UUID
    status: MovementState
    kind: MovementKind | None = None
    sku: str | None = None
    warehouse: str | None = None
    to_warehouse: str | None = None
    quantity: int | None = None
    accepted_at: datetime | None = None
    applied_at: datetime | None = None
    reason: str | None = Field(default=None, description="Why a dead-lettered movement failed.")
    duplicate_of: UUID | None = None


class MovementPublic(BaseModel):
    id: UUID
    kind: MovementKind
    sku: str
    warehouse: str
    to_warehouse: str | None
    quantity: int
    reason: str | None
    accepted_at: datetime
    applied_at: datetime


class DeadLetterPublic(BaseModel):
    movement_id: UUID
    kind: MovementKind
    sku: str
    warehouse: str
    to_warehouse: str | None
    quantity: int
    reason: str
    deliveries: int
    accepted_at: datetime
    failed_at: datetime
