"""Everything one API process holds: engines, Redis client, services, telemetry. Built in the
app's lifespan (after gunicorn forked the worker), closed when the process stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from app.core.config import Settings
from app.core.db import Database, ReadRouter
from app.core.resp import RespClient
from app.services.cache import NearCache, RedisBreaker, StockCache
from app.services.catalog import Catalog, KnownRefs
from app.services.movements import MovementIngest
from app.services.reservations import ReservationService
from app.services.stock import StockService
from app.telemetry.logs import ElasticsearchShipper
from app.telemetry.metrics import ApiMetrics

log = logging.getLogger(__name__)


def update_pool_gauges(container: Container) -> None:
    """Copy the pools' own counters into the metrics (called before each scrape)."""
    for database in (container.primary, container.replica):
        if database is None:
            continue
        stats = database.stats()
        in_use = stats.get("pool_size", 0) - stats.get("pool_available", 0)
        container.metrics.pool_in_use.labels(pool=database.name).set(in_use)
        container.metrics.pool_size.labels(pool=database.name).set(stats.get("pool_max", 0))


@dataclass
class Container:
    settings: Settings
    metrics: ApiMetrics
    tracer_provider: TracerProvider
    shipper: ElasticsearchShipper | None
    primary: Database
    replica: Database | None
    reads: ReadRouter
    redis: RespClient
    near: NearCache | None
    breaker: RedisBreaker
    cache: StockCache
    catalog: Catalog
    refs: KnownRefs
    stock: StockService
    reservations: ReservationService
    movements: MovementIngest
    _gauges: asyncio.Task[None] | None = None

    @classmethod
    def build(
        cls,
        *,
        settings: Settings,
        metrics: ApiMetrics,
        tracer_provider: TracerProvider,
        shipper: ElasticsearchShipper | None,
    ) -> Container:
        async def traced(conn: psycopg.AsyncConnection[Any]) -> None:
            PsycopgInstrumentor.instrument_connection(conn, tracer_provider=tracer_provider)

        primary = Database(
            name="primary",
            settings=settings,
            dsn=settings.database_url,
            write=True,
            application_name="inventory-api",
            configure=traced,
        )
        replica = (
            Database(
                name="replica",
                settings=settings,
                dsn=settings.replica_url,
                write=False,
                application_name="inventory-api-read",
                configure=traced,
            )
            if settings.replica_url
            else None
        )
        reads = ReadRouter(settings=settings, primary=primary, replica=replica)
        client = RespClient(url=settings.redis_url, timeout=settings.redis_timeout_seconds)
        breaker = RedisBreaker(backoff=settings.redis_down_backoff_seconds)
        near = (
            NearCache(
                url=settings.redis_url,
                timeout=settings.redis_timeout_seconds,
                max_entries=settings.near_cache_max_entries,
            )
            if settings.near_cache
            else None
        )
        cache = StockCache(client=client, breaker=breaker, near=near)
        refs = KnownRefs(primary=primary)
        cache_counter = metrics.cache

        def on_cache(result: str, tier: str) -> None:
            cache_counter.labels(result=result, tier=tier).inc()

        return cls(
            settings=settings,
            metrics=metrics,
            tracer_provider=tracer_provider,
            shipper=shipper,
            primary=primary,
            replica=replica,
            reads=reads,
            redis=client,
            near=near,
            breaker=breaker,
            cache=cache,
            catalog=Catalog(primary=primary, reads=reads),
            refs=refs,
            stock=StockService(
                primary=primary,
                reads=reads,
                cache=cache,
                cache_ttl=settings.cache_ttl_seconds,
                on_cache=on_cache,
            ),
            reservations=ReservationService(
                primary=primary,
                default_ttl=settings.reservation_ttl_seconds,
                invalidate=cache.invalidate,
            ),
            movements=MovementIngest(
                client=client,
                breaker=breaker,
                refs=refs,
                reads=reads,
                stream_key=settings.stream_key,
                max_backlog=settings.stream_max_backlog,
                idempotency_ttl=settings.idempotency_ttl_seconds,
                retry_after=settings.retry_after_seconds,
            ),
        )

    async def _refresh_pool_gauges(self) -> None:
        """Every process publishes its own pools' use (merged across workers on /metrics)."""
        while True:
            update_pool_gauges(self)
            await asyncio.sleep(1.0)

    async def open(self) -> None:
        self._gauges = asyncio.get_running_loop().create_task(
            self._refresh_pool_gauges(), name="pool-gauges"
        )
        if self.near is not None:
            self.near.start()
        await self.primary.open()
        if self.replica is not None:
            await self.replica.open()

    async def close(self) -> None:
        if self._gauges is not None:
            self._gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gauges
        await self.reads.stop()
        if self.near is not None:
            await self.near.stop()
        await self.redis.close()
        await self.primary.close()
        if self.replica is not None:
            await self.replica.close()
        self.tracer_provider.shutdown()
        if self.shipper is not None:
            self.shipper.flush()
