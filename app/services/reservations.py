"""Reservations, applied synchronously on the primary (the client needs the answer now).

A hold takes stock out of *available* in the same statement that checks it is there
(``UPDATE … WHERE on_hand - reserved >= qty``), so two concurrent holds can never both take the
last unit; the CHECK constraints of ``stock_levels`` guard the same invariant once more. Confirming
ships the held quantity (on hand and reserved both drop); releasing or expiring returns it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import psycopg

from app.core.db import Conn, Database
from app.models.reservation import ReservationCreate, ReservationPublic
from app.services.errors import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidState,
    NotFound,
    UnknownReference,
)

Invalidate = Callable[[Iterable[str]], Awaitable[bool]]

_HOLD = """
    WITH taken AS (
      UPDATE stock_levels
         SET reserved = reserved + %(qty)s, version = nextval('stock_version_seq'),
             updated_at = now()
       WHERE sku = %(sku)s AND warehouse = %(warehouse)s AND on_hand - reserved >= %(qty)s
      RETURNING sku, warehouse
    )
    INSERT INTO reservations (id, idempotency_key, sku, warehouse, quantity, status, expires_at)
    SELECT %(id)s, %(key)s, sku, warehouse, %(qty)s, 'held',
           now() + make_interval(secs => CAST(%(ttl)s AS double precision))
      FROM taken
    RETURNING *
"""

#: Ends a held reservation (confirm or release); returns nothing if it was not held.
_FINISH = """
    WITH ended AS (
      UPDATE reservations SET status = %(status)s, updated_at = now()
       WHERE id = %(id)s AND status = 'held' AND (%(status)s <> 'confirmed' OR expires_at > now())
      RETURNING *
    ), stock AS (
      UPDATE stock_levels s
         SET reserved = s.reserved - e.quantity,
             on_hand = s.on_hand - CASE WHEN %(status)s = 'confirmed' THEN e.quantity ELSE 0 END,
             version = nextval('stock_version_seq'), updated_at = now()
        FROM ended e
       WHERE s.sku = e.sku AND s.warehouse = e.warehouse
      RETURNING s.sku
    )
    SELECT ended.*, (SELECT count(*) FROM stock) AS stock_rows FROM ended
"""

#: Expires due holds (at most ``limit`` per call), returns the SKUs whose stock changed. Used by the
#: workers' sweeper and by a confirm that finds its reservation past due.
EXPIRE_DUE_SQL = """
    WITH due AS (
      SELECT id FROM reservations
       WHERE status = 'held' AND expires_at <= now() {only_id}
       ORDER BY expires_at
       LIMIT %(limit)s
         FOR UPDATE SKIP LOCKED
    ), ended AS (
      UPDATE reservations r SET status = 'expired', updated_at = now()
        FROM due WHERE r.id = due.id
      RETURNING r.sku, r.warehouse, r.quantity
    ), per_row AS (
      SELECT sku, warehouse, sum(quantity) AS quantity FROM ended GROUP BY sku, warehouse
    )
    UPDATE stock_levels s
       SET reserved = s.reserved - p.quantity, version = nextval('stock_version_seq'),
           updated_at = now()
      FROM per_row p
     WHERE s.sku = p.sku AND s.warehouse = p.warehouse
    RETURNING s.sku
"""
EXPIRE_DUE = EXPIRE_DUE_SQL.format(only_id="")
_EXPIRE_ONE = EXPIRE_DUE_SQL.format(only_id="AND id = %(id)s")


def _public(row: Any) -> ReservationPublic:
    return ReservationPublic.model_validate(row._asdict())


_BY_KEY = "SELECT * FROM reservations WHERE idempotency_key = %(key)s"
_BY_ID = "SELECT * FROM reservations WHERE id = %(id)s"


class ReservationService:
    def __init__(
        self,
        *,
        primary: Database,
        default_ttl: int,
        invalidate: Invalidate,
    ) -> None:
        self.primary = primary
        self.default_ttl = default_ttl
        self.invalidate = invalidate

    async def create(
        self, data: ReservationCreate, *, idempotency_key: str | None
    ) -> tuple[ReservationPublic, bool]:
        """Hold stock. Returns (reservation, created); a replayed idempotency key returns the
        reservation it created the first time with ``created=False``."""
        if idempotency_key is not None:
            existing = await self._by_key(idempotency_key)
            if existing is not None:
                return self._replay(existing, data), False
        params = {
            "id": uuid.uuid4(),
            "key": idempotency_key,
            "sku": data.sku,
            "warehouse": data.warehouse,
            "qty": data.quantity,
            "ttl": data.ttl_seconds or self.default_ttl,
        }
        try:
            async with self.primary.begin() as conn:
                row = await conn.one_or_none(_HOLD, params)
                if row is None:
                    await self._explain_refusal(conn, data)
        except psycopg.errors.UniqueViolation:
            if idempotency_key is None:
                raise
            existing = await self._by_key(idempotency_key)
            if existing is None:
                raise
            return self._replay(existing, data), False
        await self.invalidate([data.sku])
        return _public(row), True

    def _replay(self, existing: ReservationPublic, data: ReservationCreate) -> ReservationPublic:
        same = (existing.sku, existing.warehouse, existing.quantity) == (
            data.sku,
            data.warehouse,
            data.quantity,
        )
        if not same:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used for a different reservation "
                f"({existing.id}: {existing.quantity} {existing.sku} at {existing.warehouse})"
            )
        return existing

    async def _by_key(self, key: str) -> ReservationPublic | None:
        async with self.primary.connect() as conn:
            row = await conn.one_or_none(_BY_KEY, {"key": key})
        return None if row is None else _public(row)

    async def _explain_refusal(self, conn: Conn, data: ReservationCreate) -> None:
        if not await conn.scalar(
            "SELECT EXISTS (SELECT 1 FROM items WHERE sku = %(sku)s)", {"sku": data.sku}
        ):
            raise UnknownReference(f"unknown SKU {data.sku!r}")
        if not await conn.scalar(
            "SELECT EXISTS (SELECT 1 FROM warehouses WHERE code = %(code)s)",
            {"code": data.warehouse},
        ):
            raise UnknownReference(f"unknown warehouse {data.warehouse!r}")
        available = await conn.scalar(
            "SELECT on_hand - reserved FROM stock_levels "
            "WHERE sku = %(sku)s AND warehouse = %(warehouse)s",
            {"sku": data.sku, "warehouse": data.warehouse},
        )
        raise InsufficientStock(
            f"cannot reserve {data.quantity} {data.sku} at {data.warehouse}: "
            f"{available or 0} available"
        )

    async def get(self, reservation_id: uuid.UUID) -> ReservationPublic:
        async with self.primary.connect() as conn:
            row = await conn.one_or_none(_BY_ID, {"id": reservation_id})
        if row is None:
            raise NotFound(f"reservation {reservation_id} does not exist")
        return _public(row)

    async def confirm(self, reservation_id: uuid.UUID) -> ReservationPublic:
        return await self._finish(reservation_id, status="confirmed")

    async def release(self, reservation_id: uuid.UUID) -> ReservationPublic:
        return await self._finish(reservation_id, status="released")

    async def _finish(self, reservation_id: uuid.UUID, *, status: str) -> ReservationPublic:
        async with self.primary.begin() as conn:
            row = await conn.one_or_none(_FINISH, {"id": reservation_id, "status": status})
        if row is not None:
            await self.invalidate([row.sku])
            return _public(row)
        current = await self.get(reservation_id)
        if current.status == "held":
            # Past its expiry: expire it now (returning the stock) and refuse the confirmation.
            async with self.primary.begin() as conn:
                changed = await conn.rows(_EXPIRE_ONE, {"id": reservation_id, "limit": 1})
            if changed:
                await self.invalidate([current.sku])
            raise InvalidState(f"reservation {reservation_id} expired at {current.expires_at}")
        verb = "confirm" if status == "confirmed" else "release"
        raise InvalidState(f"cannot {verb} reservation {reservation_id}: it is {current.status}")
