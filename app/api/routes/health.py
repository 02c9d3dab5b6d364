"""Probes and metrics: /healthz (liveness, no I/O), /readyz (checks PostgreSQL and Redis),
/metrics (Prometheus text or OpenMetrics with exemplars)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client.exposition import choose_encoder

from app.api.deps import ContainerDep
from app.core.container import Container, update_pool_gauges
from app.core.db import DB_UNAVAILABLE_ERRORS
from app.services.cache import REDIS_ERRORS

router = APIRouter(tags=["operations"])

PROBE_TIMEOUT_SECONDS = 2.0
_DB_PROBE_ERRORS: tuple[type[Exception], ...] = (*DB_UNAVAILABLE_ERRORS, TimeoutError)
_REDIS_PROBE_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, TimeoutError)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Touches nothing else."""
    return {"status": "ok"}


async def _check_primary(container: Container) -> dict[str, Any]:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            async with container.primary.connect() as conn:
                await conn.execute("SELECT 1")
    except _DB_PROBE_ERRORS as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True}


async def _check_redis(container: Container) -> dict[str, Any]:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await container.redis.execute("PING")
    except _REDIS_PROBE_ERRORS as exc:
        container.breaker.failed(exc)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    container.breaker.succeeded()
    return {"ok": True}


@router.get("/readyz")
async def readyz(container: ContainerDep) -> JSONResponse:
    """Ready when PostgreSQL (primary) answers. Redis down: still ready but "degraded" — stock
    reads fall back to PostgreSQL and movements are refused with 503 until it is back."""
    primary, redis_check = await asyncio.gather(_check_primary(container), _check_redis(container))
    state = container.reads.state
    replica: dict[str, Any] = {"configured": container.replica is not None}
    if state is not None:
        replica.update(
            reachable=state.reachable,
            standby=state.standby,
            streaming=state.streaming,
            lag_seconds=None if math.isinf(state.lag_seconds) else state.lag_seconds,
            used_for_reads=container.reads.replica_fresh(),
        )
    if not primary["ok"]:
        status, code = "unavailable", 503
    elif not redis_check["ok"]:
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = {
        "status": status,
        "checks": {"postgresql": primary, "redis": redis_check, "replica": replica},
    }
    return JSONResponse(body, status_code=code)


async def _refresh_gauges(container: Container) -> None:
    metrics = container.metrics
    update_pool_gauges(container)
    state = container.reads.state
    if state is not None:
        metrics.replica_lag.set(state.lag_seconds)
    if container.breaker.open():
        return
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            length, groups = await container.redis.pipeline(
                [
                    ["XLEN", container.settings.stream_key],
                    ["XINFO", "GROUPS", container.settings.stream_key],
                ]
            )
    except _REDIS_PROBE_ERRORS:
        return
    if isinstance(length, int):
        metrics.stream.length.set(length)
    if isinstance(groups, list):
        for flat in groups:
            group = dict(zip(flat[::2], flat[1::2], strict=True))
            if group.get(b"name") == container.settings.consumer_group.encode():
                metrics.stream.pending.set(group.get(b"pending") or 0)
                lag = group.get(b"lag")
                metrics.stream.lag.set(lag if isinstance(lag, int) else length)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, container: ContainerDep) -> Response:
    await _refresh_gauges(container)
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    payload = encoder(container.metrics.scrape_registry())
    return Response(content=payload, media_type=content_type)
