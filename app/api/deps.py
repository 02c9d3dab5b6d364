"""Dependencies the routes declare (``Annotated`` aliases) and the paging parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from app.core.config import Settings
from app.core.container import Container
from app.models.common import NO_NUL, IdempotencyKey
from app.services.catalog import Catalog
from app.services.errors import InvalidRequest
from app.services.movements import MovementIngest
from app.services.reservations import ReservationService
from app.services.stock import StockService


def container_of(request: Request) -> Container:
    """The per-process container, for routes that skip dependency injection."""
    container: Container = request.app.state.container
    return container


# Dependencies are coroutines: FastAPI runs plain functions in a thread pool, which costs more
# than everything these do.
async def get_container(request: Request) -> Container:
    return container_of(request)


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_catalog(request: Request) -> Catalog:
    return container_of(request).catalog


async def get_stock(request: Request) -> StockService:
    return container_of(request).stock


async def get_reservations(request: Request) -> ReservationService:
    return container_of(request).reservations


async def get_movements(request: Request) -> MovementIngest:
    return container_of(request).movements


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
StockDep = Annotated[StockService, Depends(get_stock)]
ReservationsDep = Annotated[ReservationService, Depends(get_reservations)]
MovementsDep = Annotated[MovementIngest, Depends(get_movements)]

RequiredIdempotencyKey = Annotated[
    IdempotencyKey,
    Header(
        alias="Idempotency-Key",
        description="Client-chosen key; a repeated key is answered with the first result.",
    ),
]
OptionalIdempotencyKey = Annotated[
    IdempotencyKey | None,
    Header(alias="Idempotency-Key", description="Optional; makes the request safe to repeat."),
]


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


async def page_params(
    request: Request,
    limit: Annotated[
        int | None,
        Query(ge=1, description="Page size; at most the server's maximum (500 by default)."),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(max_length=300, pattern=NO_NUL, description="next_cursor of the previous page."),
    ] = None,
) -> PageParams:
    settings: Settings = request.app.state.settings
    if limit is None:
        limit = settings.default_page_size
    if limit > settings.max_page_size:
        raise InvalidRequest(
            f"limit {limit} is above the maximum page size {settings.max_page_size}"
        )
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]
