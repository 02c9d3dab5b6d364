"""/api/v1/stock: stock levels (cached per SKU) and the filtered stock list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.deps import PageDep, StockDep
from app.models.common import NO_NUL, Page
from app.models.stock import StockPublic, StockRowPublic

router = APIRouter(prefix="/stock", tags=["stock"])

SkuPath = Annotated[str, Path(max_length=64, pattern=NO_NUL, description="Stock keeping unit.")]


@router.get(
    "/{sku}",
    response_model=StockPublic,
    responses={200: {"headers": {"X-Stock-Source": {"description": "cache|primary|replica"}}}},
)
async def get_stock(sku: SkuPath, stock: StockDep) -> Response:
    """Stock of one SKU in every warehouse. Served from Redis when cached; PostgreSQL otherwise."""
    found = await stock.get(sku)
    return Response(
        content=found.body,
        media_type="application/json",
        headers={"X-Stock-Source": found.source},
    )


@router.get("", response_model=Page[StockRowPublic])
async def list_stock(
    stock: StockDep,
    page: PageDep,
    warehouse: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    sku: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    max_available: Annotated[
        int | None, Query(description="Only rows with at most this much available.")
    ] = None,
) -> Page[StockRowPublic]:
    """Stock rows ordered by (SKU, warehouse), from the replica when it is fresh enough."""
    rows, next_cursor = await stock.list(
        warehouse=warehouse,
        sku=sku,
        max_available=max_available,
        cursor=page.cursor,
        limit=page.limit,
    )
    return Page[StockRowPublic](items=list(rows), next_cursor=next_cursor)
