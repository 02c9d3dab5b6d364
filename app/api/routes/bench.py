"""Comparison endpoints for ``make bench-api`` (mounted only with INVENTORY_BENCH_ENDPOINTS=1):
a constant JSON answer, a stock read that queries PostgreSQL on every request, and a movement
written with one INSERT per request."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import ContainerDep, RequiredIdempotencyKey, StockDep
from app.models.movement import MovementCreate

router = APIRouter(prefix="/bench", tags=["benchmark"])

CONSTANT = b'{"sku":"CONST","levels":[{"warehouse":"W1","on_hand":10,"reserved":0,"available":10}],"total_available":10,"version":1}'  # noqa: E501


@router.get("/constant")
async def constant() -> Response:
    return Response(content=CONSTANT, media_type="application/json")


@router.get("/stock-naive/{sku}")
async def stock_naive(sku: Annotated[str, Path(max_length=64)], stock: StockDep) -> Response:
    return Response(content=await stock.get_uncached(sku), media_type="application/json")


@router.post("/movements-per-row", status_code=status.HTTP_201_CREATED)
async def movement_per_row(
    body: MovementCreate, idempotency_key: RequiredIdempotencyKey, container: ContainerDep
) -> dict[str, str]:
    await container.refs.require_item(body.sku)
    await container.refs.require_warehouse(body.warehouse)
    movement_id = uuid.uuid4()
    async with container.primary.connect() as conn:
        await conn.execute(
            "INSERT INTO bench_per_row_movements "
            "(id, idempotency_key, kind, sku, warehouse, to_warehouse, quantity) "
            "VALUES (%(id)s, %(key)s, %(kind)s, %(sku)s, %(wh)s, %(to)s, %(qty)s)",
            {
                "id": movement_id,
                "key": idempotency_key,
                "kind": body.kind,
                "sku": body.sku,
                "wh": body.warehouse,
                "to": body.to_warehouse,
                "qty": body.quantity,
            },
        )
    return {"id": str(movement_id)}
