"""/api/v1/warehouses"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from app.api.deps import CatalogDep, PageDep
from app.api.errors import link_to
from app.models.common import NO_NUL, Page
from app.models.warehouse import WarehouseCreate, WarehousePublic

router = APIRouter(prefix="/warehouses", tags=["warehouses"])

CodePath = Annotated[str, Path(max_length=64, pattern=NO_NUL, description="Warehouse code.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WarehousePublic,
    responses={
        201: {
            "links": {
                "warehouse": link_to("/api/v1/warehouses/{code}", code="$response.body#/code")
            }
        }
    },
)
async def create_warehouse(body: WarehouseCreate, catalog: CatalogDep) -> WarehousePublic:
    """Create a warehouse (409 if the code exists)."""
    return await catalog.create_warehouse(body)


@router.get("", response_model=Page[WarehousePublic])
async def list_warehouses(catalog: CatalogDep, page: PageDep) -> Page[WarehousePublic]:
    found, next_cursor = await catalog.list_warehouses(after=page.cursor, limit=page.limit)
    return Page[WarehousePublic](items=list(found), next_cursor=next_cursor)


@router.get("/{code}", response_model=WarehousePublic)
async def get_warehouse(code: CodePath, catalog: CatalogDep) -> WarehousePublic:
    return await catalog.get_warehouse(code)
