"""Warehouses and items: create, read, list; and the existence check the write path uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from app.core.db import Database, ReadRouter
from app.models.item import ItemCreate, ItemPublic
from app.models.warehouse import WarehouseCreate, WarehousePublic
from app.services.errors import AlreadyExists, NotFound, UnknownReference

_ITEM_EXISTS = "SELECT EXISTS (SELECT 1 FROM items WHERE sku = %(key)s)"
_WAREHOUSE_EXISTS = "SELECT EXISTS (SELECT 1 FROM warehouses WHERE code = %(key)s)"


class KnownRefs:
    """Remembers SKUs and warehouse codes seen to exist (they are never deleted), so the hot
    write path checks references without a database round trip. A miss asks the primary."""

    MAX_ENTRIES = 500_000

    def __init__(self, *, primary: Database) -> None:
        self.primary = primary
        self._items: set[str] = set()
        self._warehouses: set[str] = set()

    async def _exists(self, sql: str, *, value: str, known: set[str]) -> bool:
        if value in known:
            return True
        async with self.primary.connect() as conn:
            found = bool(await conn.scalar(sql, {"key": value}))
        if found:
            if len(known) >= self.MAX_ENTRIES:
                known.clear()
            known.add(value)
        return found

    async def require_item(self, sku: str) -> None:
        if not await self._exists(_ITEM_EXISTS, value=sku, known=self._items):
            raise UnknownReference(f"unknown SKU {sku!r}: create the item first")

    async def require_warehouse(self, code: str) -> None:
        if not await self._exists(_WAREHOUSE_EXISTS, value=code, known=self._warehouses):
            raise UnknownReference(f"unknown warehouse {code!r}: create the warehouse first")


class Catalog:
    def __init__(self, *, primary: Database, reads: ReadRouter) -> None:
        self.primary = primary
        self.reads = reads

    async def _one(self, sql: str, key: str) -> Any:
        """Read one row from the read target; a miss on the replica is confirmed on the primary
        (so an item created a moment ago is never reported missing)."""
        database, source = self.reads.engine()
        async with database.connect() as conn:
            row = await conn.one_or_none(sql, {"key": key})
        if row is None and source != "primary":
            async with self.primary.connect() as conn:
                row = await conn.one_or_none(sql, {"key": key})
        return row

    # -- warehouses -----------------------------------------------------------------------------
    async def create_warehouse(self, data: WarehouseCreate) -> WarehousePublic:
        try:
            async with self.primary.connect() as conn:
                row = await conn.one_or_none(
                    "INSERT INTO warehouses (code, name) VALUES (%(code)s, %(name)s) "
                    "RETURNING code, name, created_at",
                    {"code": data.code, "name": data.name},
                )
        except psycopg.errors.UniqueViolation as exc:
            raise AlreadyExists(f"warehouse {data.code!r} already exists") from exc
        return WarehousePublic.model_validate(row._asdict())

    async def get_warehouse(self, code: str) -> WarehousePublic:
        row = await self._one(
            "SELECT code, name, created_at FROM warehouses WHERE code = %(key)s", code
        )
        if row is None:
            raise NotFound(f"warehouse {code!r} does not exist")
        return WarehousePublic.model_validate(row._asdict())

    async def list_warehouses(
        self, *, after: str | None, limit: int
    ) -> tuple[Sequence[WarehousePublic], str | None]:
        database, _ = self.reads.engine()
        async with database.connect() as conn:
            rows = await conn.rows(
                "SELECT code, name, created_at FROM warehouses "
                "WHERE %(after)s::text IS NULL OR code > %(after)s ORDER BY code LIMIT %(n)s",
                {"after": after, "n": limit + 1},
            )
        page = [WarehousePublic.model_validate(r._asdict()) for r in rows[:limit]]
        return page, (page[-1].code if len(rows) > limit else None)

    # -- items ----------------------------------------------------------------------------------
    async def create_item(self, data: ItemCreate) -> ItemPublic:
        try:
            async with self.primary.connect() as conn:
                row = await conn.one_or_none(
                    "INSERT INTO items (sku, name, unit) VALUES (%(sku)s, %(name)s, %(unit)s) "
                    "RETURNING sku, name, unit, created_at",
                    {"sku": data.sku, "name": data.name, "unit": data.unit},
                )
        except psycopg.errors.UniqueViolation as exc:
            raise AlreadyExists(f"item {data.sku!r} already exists") from exc
        return ItemPublic.model_validate(row._asdict())

    async def get_item(self, sku: str) -> ItemPublic:
        row = await self._one(
            "SELECT sku, name, unit, created_at FROM items WHERE sku = %(key)s", sku
        )
        if row is None:
            raise NotFound(f"item {sku!r} does not exist")
        return ItemPublic.model_validate(row._asdict())

    async def list_items(
        self, *, after: str | None, limit: int, name_contains: str | None
    ) -> tuple[Sequence[ItemPublic], str | None]:
        pattern = None
        if name_contains:
            escaped = name_contains.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            pattern = f"%{escaped}%"
        database, _ = self.reads.engine()
        async with database.connect() as conn:
            rows = await conn.rows(
                "SELECT sku, name, unit, created_at FROM items "
                "WHERE (%(after)s::text IS NULL OR sku > %(after)s) "
                "AND (%(pattern)s::text IS NULL OR name ILIKE %(pattern)s) "
                "ORDER BY sku LIMIT %(n)s",
                {"after": after, "pattern": pattern, "n": limit + 1},
            )
        page = [ItemPublic.model_validate(r._asdict()) for r in rows[:limit]]
        return page, (page[-1].sku if len(rows) > limit else None)
