"""Reservation models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from app.models.common import Code, StrictModel
from app.models.movement import MAX_QUANTITY

ReservationStatus = Literal["held", "confirmed", "released", "expired"]


class ReservationCreate(StrictModel):
    sku: Code
    warehouse: Code
    quantity: int = Field(gt=0, le=MAX_QUANTITY)
    ttl_seconds: int | None = Field(
        default=None, gt=0, le=7 * 24 * 3600, description="Hold time; the server default if null."
    )


class ReservationPublic(BaseModel):
    id: UUID
    sku: str
    warehouse: str
    quantity: int
    status: ReservationStatus
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
