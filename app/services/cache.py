"""Read-through cache of stock levels in Redis, and the circuit breaker the API puts around Redis.

``inventory:stock:<sku>`` holds the JSON the API returns for that SKU. Every commit that changes a
SKU's stock (a worker batch, a reservation) *invalidates* it afterwards: it increments the SKU's
generation ``inventory:stockgen:<sku>`` and deletes the entry. A reader that misses notes the
generation, reads PostgreSQL (the primary) and stores its result only if the generation is still
the same (one Lua script), so a reader that raced a commit can never put back the state from before
it (the lease scheme of memcached at Facebook). Worst case, when an invalidation is lost because
Redis failed right after a commit, an entry is stale until it expires (``cache_ttl_seconds``).

In front of Redis each API process keeps a near cache (:class:`NearCache`) that Redis keeps
coherent with client-side-caching invalidation messages; a hit there costs no round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from app.core.resp import RESP_ERRORS, RespClient, RespError
from app.models.stock import StockLevelPublic, StockPublic

log = logging.getLogger(__name__)

CACHE_PREFIX = "inventory:stock:"
INVALIDATION_CHANNEL = "__redis__:invalidate"
GENERATION_PREFIX = "inventory:stockgen:"
#: Lifetime of a generation counter (far longer than any read can take).
GENERATION_TTL_SECONDS = 86_400

#: KEYS[1] entry, KEYS[2] generation; ARGV generation seen before the read ('' if none), json,
#: ttl. Stores the entry only if no invalidation happened since the reader looked.
FILL_LUA = """
local g = redis.call('GET', KEYS[2])
if (g or '') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

#: Errors of redis-py (workers) and of the API's own client.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, OSError, *RESP_ERRORS)


def cache_key(sku: str) -> str:
    return CACHE_PREFIX + sku


def generation_key(sku: str) -> str:
    return GENERATION_PREFIX + sku


class StockRow(Protocol):
    """A row of ``stock_levels`` (a SQLAlchemy Row or anything with these attributes)."""

    warehouse: str
    on_hand: int
    reserved: int
    version: int


def stock_view(sku: str, rows: Iterable[StockRow]) -> StockPublic:
    levels: list[StockLevelPublic] = []
    version = 0
    for row in rows:
        levels.append(
            StockLevelPublic(
                warehouse=row.warehouse,
                on_hand=int(row.on_hand),
                reserved=int(row.reserved),
                available=int(row.on_hand) - int(row.reserved),
            )
        )
        version = max(version, int(row.version))
    levels.sort(key=lambda level: level.warehouse)
    return StockPublic(
        sku=sku,
        levels=levels,
        total_available=sum(level.available for level in levels),
        version=version,
    )


def encode(view: StockPublic) -> bytes:
    return json.dumps(view.model_dump(), separators=(",", ":")).encode()


class RedisBreaker:
    """After a Redis failure, callers skip Redis for ``backoff`` seconds instead of each waiting
    for a timeout; the first call after that tries again."""

    def __init__(self, *, backoff: float) -> None:
        self.backoff = backoff
        self.down_until = 0.0
        self.last_error: str | None = None

    def open(self) -> bool:
        return time.monotonic() < self.down_until

    def failed(self, exc: BaseException) -> None:
        self.down_until = time.monotonic() + self.backoff
        self.last_error = f"{type(exc).__name__}: {exc}"

    def succeeded(self) -> None:
        self.down_until = 0.0
        self.last_error = None


class CacheUnavailable(Exception):
    """Redis did not answer (or the breaker is open); the caller reads PostgreSQL instead."""


@dataclass(frozen=True)
class Lookup:
    """What the cache had: the entry (None on a miss), the generation to fill with, and which
    tier answered ("near" = this process's copy, "redis")."""

    body: bytes | None
    generation: str
    tier: str


class NearCache:
    """A process-local copy of stock entries, kept coherent by Redis itself.

    A dedicated connection turns on client tracking in broadcast mode for ``inventory:stock:``
    and subscribes to the invalidation channel, so Redis pushes the name of every entry that
    changes (set, deleted, expired) to this process. An entry read from Redis is kept here unless
    an invalidation for it arrived while the read was in flight. While the tracking connection
    is down — or silent for ``2 × ping_interval`` — the near cache is emptied and not used, so a
    stale copy can never outlive a lost invalidation by more than that.
    """

    def __init__(
        self, *, url: str, timeout: float, max_entries: int, ping_interval: float = 1.0
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.max_entries = max_entries
        self.ping_interval = ping_interval
        self.entries: dict[str, bytes] = {}
        self.enabled = False
        self.seq = 0
        self.floor = 0
        self.touched: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._client: RespClient | None = None

    # -- lookups ----------------------------------------------------------------------------
    def get(self, sku: str) -> bytes | None:
        return self.entries.get(sku) if self.enabled else None

    def token(self) -> int:
        return self.seq

    def store(self, sku: str, *, body: bytes, token: int) -> None:
        if not self.enabled or token < self.floor or self.touched.get(sku, 0) > token:
            return
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[sku] = body

    # -- invalidations ----------------------------------------------------------------------
    def _on_push(self, reply: Any) -> None:
        keys = reply[2] if len(reply) > 2 else None
        self.seq += 1
        if keys is None:  # FLUSHDB / FLUSHALL: everything is invalid
            self._reset()
            return
        if isinstance(keys, bytes):
            keys = [keys]
        if len(self.touched) > 100_000:
            self._reset()
        for key in keys:
            sku = key.decode()[len(CACHE_PREFIX) :]
            self.entries.pop(sku, None)
            self.touched[sku] = self.seq

    def forget(self, skus: Iterable[str]) -> None:
        """Drop entries this process itself just changed (before Redis even tells it)."""
        self.seq += 1
        for sku in skus:
            self.entries.pop(sku, None)
            self.touched[sku] = self.seq

    def _reset(self) -> None:
        self.seq += 1
        self.floor = self.seq
        self.entries.clear()
        self.touched.clear()

    def _disable(self) -> None:
        self.enabled = False
        self._reset()

    async def _listen_once(self) -> None:
        client = RespClient(
            url=self.url,
            timeout=self.timeout,
            on_push=self._on_push,
            on_close=self._disable,  # at once: no window in which a lost invalidation goes unseen
            name="inventory-near",
        )
        self._client = client
        try:
            client_id = await client.execute("CLIENT", "ID")
            await client.execute(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", CACHE_PREFIX
            )
            await client.execute("SUBSCRIBE", INVALIDATION_CHANNEL)
            self._reset()
            self.enabled = True
            while True:
                await asyncio.sleep(self.ping_interval)
                await client.execute("PING")  # proves the channel is alive
        finally:
            self._disable()
            await client.close()

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._listen_once()
            except RESP_ERRORS as exc:
                log.info("near cache off (redis tracking connection: %s)", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="near-cache")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class StockCache:
    """The API's side of the cache: the near cache, then Redis."""

    #: SKUs whose invalidation failed while Redis was down; retried when it answers again.
    MAX_PENDING = 10_000

    def __init__(
        self, *, client: RespClient, breaker: RedisBreaker, near: NearCache | None
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.near = near
        self.pending_invalidations: set[str] = set()

    async def get(self, sku: str) -> Lookup:
        near = self.near
        if near is not None:
            body = near.get(sku)
            if body is not None:
                return Lookup(body=body, generation="", tier="near")
            token = near.token()
        if self.breaker.open():
            raise CacheUnavailable(self.breaker.last_error or "redis marked down")
        try:
            if self.pending_invalidations:
                await self._flush_pending()
            entry, generation = await self.client.execute(
                "MGET", cache_key(sku), generation_key(sku)
            )
        except RESP_ERRORS as exc:
            self.breaker.failed(exc)
            raise CacheUnavailable(str(exc)) from exc
        self.breaker.succeeded()
        if entry is not None and near is not None:
            near.store(sku, body=entry, token=token)
        return Lookup(
            body=entry, generation=generation.decode() if generation else "", tier="redis"
        )

    async def fill(self, *, sku: str, body: bytes, generation: str, ttl: int) -> bool:
        """Store ``body`` unless the SKU was invalidated since ``generation`` was read."""
        if self.breaker.open():
            return False
        try:
            stored = await self.client.evalsha(
                FILL_LUA, keys=[cache_key(sku), generation_key(sku)], args=[generation, body, ttl]
            )
        except RESP_ERRORS as exc:
            self.breaker.failed(exc)
            return False
        return bool(stored)

    async def invalidate(self, skus: Iterable[str]) -> bool:
        """Call after a commit that changed these SKUs. False (and remembered) if Redis is down."""
        wanted = set(skus)
        if self.near is not None:
            self.near.forget(wanted)
        if self.breaker.open():
            self._remember(wanted)
            return False
        try:
            await self._invalidate(wanted)
        except RESP_ERRORS as exc:
            self.breaker.failed(exc)
            self._remember(wanted)
            return False
        return True

    async def _invalidate(self, skus: Iterable[str]) -> None:
        commands: list[list[Any]] = []
        for sku in skus:
            commands.append(["INCR", generation_key(sku)])
            commands.append(["EXPIRE", generation_key(sku), GENERATION_TTL_SECONDS])
            commands.append(["DEL", cache_key(sku)])
        for reply in await self.client.pipeline(commands):
            if isinstance(reply, RespError):
                raise reply

    def _remember(self, skus: set[str]) -> None:
        if len(self.pending_invalidations) + len(skus) <= self.MAX_PENDING:
            self.pending_invalidations |= skus

    async def _flush_pending(self) -> None:
        pending = set(self.pending_invalidations)
        await self._invalidate(pending)
        self.pending_invalidations -= pending


def queue_invalidation(pipe: Any, skus: Iterable[str]) -> None:
    """Add the invalidation of ``skus`` to a redis-py pipeline (the workers' side)."""
    for sku in skus:
        pipe.incr(generation_key(sku))
        pipe.expire(generation_key(sku), GENERATION_TTL_SECONDS)
        pipe.delete(cache_key(sku))


def invalidate_sync(client: redis.Redis, skus: Iterable[str]) -> None:
    """Invalidate every SKU a committed transaction changed, in one round trip."""
    pipe = client.pipeline(transaction=False)
    queue_invalidation(pipe, skus)
    pipe.execute()
