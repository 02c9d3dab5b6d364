"""Cache fills against the real PostgreSQL and Redis: concurrent misses of one SKU in a process
make one PostgreSQL read, and entries get lifetimes spread below the configured TTL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import redis

from app.core.config import Settings
from app.core.container import Container
from app.core.db import Conn
from app.services.cache import cache_key
from app.services.errors import NotFound
from app.telemetry.metrics import ApiMetrics
from app.telemetry.tracing import make_tracer_provider
from controlplane.stack.backends import Redis
from tests.integration.app.conftest import Databases, unique

TTL = 100


def seed(dbs: Databases, skus: list[str]) -> None:
    with psycopg.connect(dbs.write_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO warehouses (code, name) VALUES ('W1', 'Fill') ON CONFLICT DO NOTHING"
        )
        for sku in skus:
            conn.execute("INSERT INTO items (sku, name) VALUES (%s, 'fill test')", (sku,))
            conn.execute(
                "INSERT INTO stock_levels (sku, warehouse, on_hand) VALUES (%s, 'W1', 7)", (sku,)
            )


@asynccontextmanager
async def opened(dbs: Databases, redis_server: Redis) -> AsyncIterator[tuple[Container, list[str]]]:
    """A container on the real backends; the list collects every PostgreSQL statement it runs."""
    settings = Settings(
        database_url=dbs.write_dsn,
        redis_url=redis_server.url,
        cache_ttl_seconds=TTL,
        near_cache=False,
        log_to_stderr=False,
    )
    container = Container.build(
        settings=settings,
        metrics=ApiMetrics(service="inventory"),
        tracer_provider=make_tracer_provider(
            service_name="inventory", otlp_endpoint=None, sample_ratio=0.0
        ),
        shipper=None,
    )
    statements: list[str] = []
    connect = container.primary.connect

    @asynccontextmanager
    async def counted() -> AsyncIterator[Conn]:
        async with connect() as conn:
            rows = conn.rows

            async def noted(sql: str, params: Any = None) -> list[Any]:
                statements.append(sql)
                return await rows(sql, params)

            conn.rows = noted  # type: ignore[method-assign]
            yield conn

    container.primary.connect = counted  # type: ignore[method-assign]
    await container.open()
    await container.redis.execute("PING")  # connected: concurrent lookups leave together
    try:
        yield container, statements
    finally:
        await container.close()


def test_concurrent_misses_of_one_sku_make_one_postgresql_read(
    databases: Databases, redis_server: Redis
) -> None:
    sku = unique("FILL")
    seed(databases, [sku])

    async def scenario() -> tuple[list[bytes], list[str]]:
        async with opened(databases, redis_server) as (container, statements):
            reads = await asyncio.gather(*(container.stock.get(sku) for _ in range(40)))
            assert {r.source for r in reads} == {"primary"}, "all 40 missed the empty cache"
            again = await container.stock.get(sku)
            assert again.source == "cache"
            return [r.body for r in reads], statements

    bodies, statements = asyncio.run(scenario())
    assert len(statements) == 1, f"one read for 40 concurrent misses, got {len(statements)}"
    assert len(set(bodies)) == 1
    assert json.loads(bodies[0])["total_available"] == 7


def test_a_missing_sku_is_404_for_every_waiting_reader(
    databases: Databases, redis_server: Redis
) -> None:
    sku = unique("NOPE")

    async def scenario() -> list[BaseException | object]:
        async with opened(databases, redis_server) as (container, _):
            return await asyncio.gather(
                *(container.stock.get(sku) for _ in range(5)), return_exceptions=True
            )

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, NotFound) for o in outcomes), outcomes


def test_filled_entries_expire_spread_over_the_last_fifth_of_the_ttl(
    databases: Databases, redis_server: Redis
) -> None:
    skus = [unique("TTL") for _ in range(30)]
    seed(databases, skus)

    async def scenario() -> None:
        async with opened(databases, redis_server) as (container, _):
            for sku in skus:
                await container.stock.get(sku)

    asyncio.run(scenario())
    client = redis.Redis.from_url(redis_server.url)
    try:
        ttls = [client.ttl(cache_key(sku)) for sku in skus]
    finally:
        client.close()
    assert all(0.8 * TTL - 2 <= t <= TTL for t in ttls), ttls
    assert len(set(ttls)) > 3, f"lifetimes are spread, not all equal: {ttls}"
