"""Reading stock levels: through the Redis cache, falling back to PostgreSQL when Redis is down.

A miss is filled once per process: requests that miss the same SKU at the same cache generation
while its PostgreSQL read is in flight wait for that read instead of each making their own (a hot
SKU that expires would otherwise send every request of the next few milliseconds to PostgreSQL).
Fills get a lifetime spread over the last fifth of ``cache_ttl``, so entries filled together (a
warm-up, a restart) do not all expire in the same second.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.core.db import Database, ReadRouter
from app.models.stock import StockRowPublic
from app.services.cache import CacheUnavailable, StockCache, encode, stock_view
from app.services.errors import InvalidRequest, NotFound

CacheOutcome = Callable[[str, str], None]  # (result, tier)

_STOCK_OF_SKU = "SELECT warehouse, on_hand, reserved, version FROM stock_levels WHERE sku = %(sku)s"
_ITEM_EXISTS = "SELECT EXISTS (SELECT 1 FROM items WHERE sku = %(sku)s)"
_LIST = """
SELECT sku, warehouse, on_hand, reserved, updated_at FROM stock_levels
 WHERE (%(warehouse)s::text IS NULL OR warehouse = %(warehouse)s)
   AND (%(sku)s::text IS NULL OR sku = %(sku)s)
   AND (%(max_available)s::bigint IS NULL OR on_hand - reserved <= %(max_available)s)
   AND (%(after_sku)s::text IS NULL OR (sku, warehouse) > (%(after_sku)s, %(after_wh)s))
 ORDER BY sku, warehouse
 LIMIT %(n)s
"""


@dataclass(frozen=True)
class StockRead:
    body: bytes
    source: str  # "cache", "primary" or "replica"


class StockService:
    def __init__(
        self,
        *,
        primary: Database,
        reads: ReadRouter,
        cache: StockCache,
        cache_ttl: int,
        on_cache: CacheOutcome,
    ) -> None:
        self.primary = primary
        self.reads = reads
        self.cache = cache
        self.cache_ttl = cache_ttl
        self.on_cache = on_cache
        #: (sku, generation) -> the PostgreSQL read and cache fill in flight for it.
        self._fills: dict[tuple[str, str], asyncio.Future[bytes]] = {}

    def fill_ttl(self) -> int:
        """A lifetime between 80 % and 100 % of ``cache_ttl`` (never longer: it is the bound on
        staleness when an invalidation is lost)."""
        return max(1, self.cache_ttl - random.randint(0, self.cache_ttl // 5))

    async def get(self, sku: str) -> StockRead:
        """The stock of one SKU as JSON bytes (cache hit, or PostgreSQL and then cache fill).

        A fill reads the primary, so a cached entry is never older than the last invalidation;
        with Redis down, the read goes through the read router (replica if fresh enough).
        """
        try:
            lookup = await self.cache.get(sku)
        except CacheUnavailable:
            self.on_cache("error", "redis")
            database, source = self.reads.engine()
            return StockRead(body=await self._read(database, sku), source=source)
        if lookup.body is not None:
            self.on_cache("hit", lookup.tier)
            return StockRead(body=lookup.body, source="cache")
        self.on_cache("miss", lookup.tier)
        key = (sku, lookup.generation)
        fill = self._fills.get(key)
        if fill is None:
            fill = asyncio.ensure_future(self._fill(sku, lookup.generation))
            self._fills[key] = fill
            fill.add_done_callback(lambda done: self._fill_done(key, done))
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        return StockRead(body=await asyncio.shield(fill), source="primary")

    async def _fill(self, sku: str, generation: str) -> bytes:
        body = await self._read(self.primary, sku)
        await self.cache.fill(sku=sku, body=body, generation=generation, ttl=self.fill_ttl())
        return body

    def _fill_done(self, key: tuple[str, str], done: asyncio.Future[bytes]) -> None:
        if self._fills.get(key) is done:
            del self._fills[key]
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have gone away

    async def get_uncached(self, sku: str) -> bytes:
        """The naive path the benchmark compares against: PostgreSQL on every request."""
        return await self._read(self.primary, sku)

    async def _read(self, database: Database, sku: str) -> bytes:
        async with database.connect() as conn:
            rows = await conn.rows(_STOCK_OF_SKU, {"sku": sku})
            known = bool(rows) or bool(await conn.scalar(_ITEM_EXISTS, {"sku": sku}))
        if not known and database is not self.primary:
            async with self.primary.connect() as conn:
                known = bool(await conn.scalar(_ITEM_EXISTS, {"sku": sku}))
        if not known:
            raise NotFound(f"item {sku!r} does not exist")
        return encode(stock_view(sku, rows))

    async def list(
        self,
        *,
        warehouse: str | None,
        sku: str | None,
        max_available: int | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[StockRowPublic], str | None]:
        after_sku = after_wh = None
        if cursor is not None:
            after_sku, sep, after_wh = cursor.partition(",")
            if not sep or not after_sku or not after_wh:
                raise InvalidRequest(f"malformed cursor {cursor!r}")
        database, _ = self.reads.engine()
        async with database.connect() as conn:
            rows = await conn.rows(
                _LIST,
                {
                    "warehouse": warehouse,
                    "sku": sku,
                    "max_available": max_available,
                    "after_sku": after_sku,
                    "after_wh": after_wh,
                    "n": limit + 1,
                },
            )
        page = [
            StockRowPublic(
                sku=r.sku,
                warehouse=r.warehouse,
                on_hand=r.on_hand,
                reserved=r.reserved,
                available=r.on_hand - r.reserved,
                updated_at=r.updated_at,
            )
            for r in rows[:limit]
        ]
        next_cursor = f"{page[-1].sku},{page[-1].warehouse}" if len(rows) > limit else None
        return page, next_cursor
