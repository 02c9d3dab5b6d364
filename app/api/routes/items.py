"""/api/v1/items"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from app.api.deps import CatalogDep, PageDep
from app.api.errors import link_to
from app.models.common import NO_NUL, Page
from app.models.item import ItemCreate, ItemPublic

router = APIRouter(prefix="/items", tags=["items"])

SkuPath = Annotated[str, Path(max_length=64, pattern=NO_NUL, description="Stock keeping unit.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemPublic,
    responses={
        201: {
            "links": {
                "item": link_to("/api/v1/items/{sku}", sku="$response.body#/sku"),
                "stock": link_to("/api/v1/stock/{sku}", sku="$response.body#/sku"),
            }
        }
    },
)
async def create_item(body: ItemCreate, catalog: CatalogDep) -> ItemPublic:
    """Create an item (409 if the SKU exists)."""
    return await catalog.create_item(body)


@router.get("", response_model=Page[ItemPublic])
async def list_items(
    catalog: CatalogDep,
    page: PageDep,
    name_contains: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
) -> Page[ItemPublic]:
    found, next_cursor = await catalog.list_items(
        after=page.cursor, limit=page.limit, name_contains=name_contains
    )
    return Page[ItemPublic](items=list(found), next_cursor=next_cursor)


@router.get("/{sku}", response_model=ItemPublic)
async def get_item(sku: SkuPath, catalog: CatalogDep) -> ItemPublic:
    return await catalog.get_item(sku)
