"""Warehouse models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from app.models.common import Code, Name, StrictModel


class WarehouseCreate(StrictModel):
    code: Code
    name: Name


class WarehousePublic(BaseModel):
    code: str
    name: str
    created_at: datetime
