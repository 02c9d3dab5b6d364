"""Item (SKU) models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.models.common import NO_NUL, Code, Name, StrictModel


class ItemCreate(StrictModel):
    sku: Code
    name: Name
    unit: str = Field(default="each", min_length=1, max_length=20, pattern=NO_NUL)


class ItemPublic(BaseModel):
    sku: str
    name: str
    unit: str
    created_at: datetime
