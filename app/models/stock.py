"""Stock level models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class StockLevelPublic(BaseModel):
    warehouse: str
    on_hand: int
    reserved: int
    available: int


class StockPublic(BaseModel):
    """Stock of one SKU in every warehouse that has held it."""

    sku: str
    levels: list[StockLevelPublic]
    total_available: int
    version: int


class StockRowPublic(BaseModel):
    """One (SKU, warehouse) row of the stock list."""

    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    updated_at: datetime
