"""The write path's front half: validate a movement, queue it on the Redis stream, say 202.

One Lua script does the idempotency check, the backpressure check and the append atomically, so
a movement is either queued with its key recorded, or not queued at all. The workers
(``app.worker``) apply what is queued. Whether a movement applied, went to the dead letters or
still waits is answered from PostgreSQL (the record of truth) and then from Redis.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate

from app.core.db import Database, ReadRouter
from app.core.resp import RespClient
from app.models.movement import (
    DeadLetterPublic,
    MovementCreate,
    MovementPublic,
    MovementStatus,
)
from app.services.apply_plan import STREAM_FIELD, StreamMovement
from app.services.cache import REDIS_ERRORS, RedisBreaker
from app.services.catalog import KnownRefs
from app.services.errors import IdempotencyConflict, InvalidRequest, NotFound, Unavailable

IDEMPOTENCY_PREFIX = "inventory:idem:"
STATUS_PREFIX = "inventory:movement:"

#: KEYS: idempotency key, stream, status key. ARGV: movement id, fingerprint, ttl, max backlog,
#: then the stream entry's field/value pairs. Returns {1, entry id} when queued,
#: {0, "<id>|<fingerprint>"} when the key was used before, {2, length} when the stream is full.
INGEST_LUA = """
local existing = redis.call('GET', KEYS[1])
if existing then
  return {0, existing}
end
local backlog = redis.call('XLEN', KEYS[2])
if backlog >= tonumber(ARGV[4]) then
  return {2, tostring(backlog)}
end
local entry = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
redis.call('SET', KEYS[3], 'accepted', 'EX', ARGV[3])
return {1, entry}
"""


def fingerprint(body: MovementCreate) -> str:
    raw = "|".join(
        [
            body.kind,
            body.sku,
            body.warehouse,
            body.to_warehouse or "",
            str(body.quantity),
            body.reason or "",
        ]
    )
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Accepted:
    movement_id: uuid.UUID
    replayed: bool


class MovementIngest:
    def __init__(
        self,
        *,
        client: RespClient,
        breaker: RedisBreaker,
        refs: KnownRefs,
        reads: ReadRouter,
        stream_key: str,
        max_backlog: int,
        idempotency_ttl: int,
        retry_after: int,
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.refs = refs
        self.reads = reads
        self.stream_key = stream_key
        self.max_backlog = max_backlog
        self.idempotency_ttl = idempotency_ttl
        self.retry_after = retry_after

    async def submit(self, body: MovementCreate, *, idempotency_key: str) -> Accepted:
        """Queue the movement durably or raise; never answers "accepted" for a lost write."""
        await self.refs.require_item(body.sku)
        await self.refs.require_warehouse(body.warehouse)
        if body.to_warehouse is not None:
            await self.refs.require_warehouse(body.to_warehouse)
        if self.breaker.open():
            raise self._unavailable(self.breaker.last_error or "redis marked down")
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        movement = StreamMovement(
            entry_id="",
            movement_id=uuid.uuid4(),
            idempotency_key=idempotency_key,
            kind=body.kind,
            sku=body.sku,
            warehouse=body.warehouse,
            to_warehouse=body.to_warehouse,
            quantity=body.quantity,
            reason=body.reason,
            accepted_at_ms=int(time.time() * 1000),
            traceparent=carrier.get("traceparent"),
            tracestate=carrier.get("tracestate"),
        )
        print_ = fingerprint(body)
        args: list[Any] = [
            str(movement.movement_id),
            print_,
            self.idempotency_ttl,
            self.max_backlog,
            STREAM_FIELD,
            movement.to_json(),
        ]
        try:
            outcome, detail = await self.client.evalsha(
                INGEST_LUA,
                keys=[
                    IDEMPOTENCY_PREFIX + idempotency_key,
                    self.stream_key,
                    STATUS_PREFIX + str(movement.movement_id),
                ],
                args=args,
            )
        except REDIS_ERRORS as exc:
            self.breaker.failed(exc)
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from exc
        self.breaker.succeeded()
        if outcome == 1:
            return Accepted(movement_id=movement.movement_id, replayed=False)
        if outcome == 2:
            raise Unavailable(
                f"the movement stream holds {int(detail)} movements waiting to be applied; "
                "try again later",
                retry_after=self.retry_after,
            )
        previous_id, _, previous_print = detail.decode().partition("|")
        if previous_print != print_:
            raise IdempotencyConflict(
                f"Idempotency-Key {idempotency_key!r} was already used for a different movement "
                f"({previous_id})"
            )
        return Accepted(movement_id=uuid.UUID(previous_id), replayed=True)

    def _unavailable(self, why: str) -> Unavailable:
        return Unavailable(
            f"movements cannot be accepted durably right now (Redis: {why}); nothing was queued",
            retry_after=self.retry_after,
        )

    async def status(self, movement_id: uuid.UUID) -> MovementStatus:
        """applied / dead_letter from PostgreSQL; else accepted / duplicate from Redis.

        A movement Redis calls "accepted" is looked up on the primary once more, so a lagging
        replica never makes an applied movement look pending.
        """
        engine, source = self.reads.engine()
        found = await _lookup(engine, movement_id)
        if found is not None:
            return found
        try:
            state = await self.client.execute("GET", STATUS_PREFIX + str(movement_id))
        except REDIS_ERRORS as exc:
            self.breaker.failed(exc)
            raise Unavailable(
                f"movement {movement_id} is not applied and its queue state is unknown "
                f"while Redis is down ({exc})",
                retry_after=self.retry_after,
            ) from exc
        if state is None:
            raise NotFound(f"movement {movement_id} does not exist (or its record expired)")
        text = state.decode() if isinstance(state, bytes) else str(state)
        if text.startswith("duplicate:"):
            return MovementStatus(
                id=movement_id, status="duplicate", duplicate_of=uuid.UUID(text.split(":", 1)[1])
            )
        if source != "primary":
            found = await _lookup(self.reads.primary, movement_id)
            if found is not None:
                return found
        return MovementStatus(id=movement_id, status="accepted")

    async def history(
        self, *, sku: str | None, after: str | None, limit: int
    ) -> tuple[list[MovementPublic], str | None]:
        database, _ = self.reads.engine()
        async with database.connect() as conn:
            rows = await conn.rows(
                "SELECT * FROM movements "
                "WHERE (%(sku)s::text IS NULL OR sku = %(sku)s) "
                "AND (%(after)s::uuid IS NULL OR id > %(after)s) ORDER BY id LIMIT %(n)s",
                {"sku": sku, "after": _cursor_uuid(after), "n": limit + 1},
            )
        page = [MovementPublic.model_validate(r._asdict()) for r in rows[:limit]]
        return page, (str(page[-1].id) if len(rows) > limit else None)

    async def dead_letters(
        self, *, after: str | None, limit: int
    ) -> tuple[list[DeadLetterPublic], str | None]:
        database, _ = self.reads.engine()
        async with database.connect() as conn:
            rows = await conn.rows(
                "SELECT * FROM movement_dead_letters "
                "WHERE %(after)s::uuid IS NULL OR movement_id > %(after)s "
                "ORDER BY movement_id LIMIT %(n)s",
                {"after": _cursor_uuid(after), "n": limit + 1},
            )
        page = [DeadLetterPublic.model_validate(r._asdict()) for r in rows[:limit]]
        return page, (str(page[-1].movement_id) if len(rows) > limit else None)


def _movement_fields(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "sku": row.sku,
        "warehouse": row.warehouse,
        "to_warehouse": row.to_warehouse,
        "quantity": row.quantity,
        "accepted_at": row.accepted_at,
        "applied_at": row.applied_at,
        "reason": row.reason,
    }


def _cursor_uuid(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError as exc:
        raise InvalidRequest(f"malformed cursor {cursor!r}") from exc


async def _lookup(database: Database, movement_id: uuid.UUID) -> MovementStatus | None:
    async with database.connect() as conn:
        row = await conn.one_or_none(
            "SELECT * FROM movements WHERE id = %(id)s", {"id": movement_id}
        )
        if row is not None:
            return MovementStatus(status="applied", **_movement_fields(row))
        dead = await conn.one_or_none(
            "SELECT * FROM movement_dead_letters WHERE movement_id = %(id)s", {"id": movement_id}
        )
    if dead is None:
        return None
    return MovementStatus(
        id=movement_id,
        status="dead_letter",
        kind=dead.kind,
        sku=dead.sku,
        warehouse=dead.warehouse,
        to_warehouse=dead.to_warehouse,
        quantity=dead.quantity,
        accepted_at=dead.accepted_at,
        reason=dead.reason,
    )
