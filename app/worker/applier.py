"""Applying a batch of movements to PostgreSQL in one transaction, set-based.

1. Look up which idempotency keys are already recorded (applied or dead-lettered): a redelivered
   movement is skipped, never applied twice; the unique index on ``movements.idempotency_key``
   makes a concurrent double apply fail the whole transaction (it is then retried and skipped).
2. Make sure every touched (SKU, warehouse) row exists, then lock them all in sorted order
   (``SELECT … ORDER BY … FOR UPDATE``): reservations and other workers wait, nobody deadlocks.
3. Decide in memory which movements apply (:func:`app.services.apply_plan.plan_batch`).
4. Write: one ``UPDATE … FROM unnest(…)`` for all changed rows, ``COPY`` for the movement rows, one
   multi-row insert for the dead letters. Commit. Only then does the caller acknowledge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from app.services.apply_plan import Level, Plan, StreamMovement, plan_batch, touched_keys

_SEEN = """
SELECT idempotency_key, id FROM movements WHERE idempotency_key = ANY(%(keys)s::text[])
UNION ALL
SELECT idempotency_key, movement_id FROM movement_dead_letters
 WHERE idempotency_key = ANY(%(keys)s::text[])
"""

_ENSURE_ROWS = """
INSERT INTO stock_levels (sku, warehouse)
SELECT u.sku, u.warehouse FROM unnest(%(skus)s::text[], %(whs)s::text[]) AS u(sku, warehouse)
 ORDER BY u.sku, u.warehouse
ON CONFLICT DO NOTHING
"""

_LOCK_ROWS = """
SELECT s.sku, s.warehouse, s.on_hand, s.reserved
  FROM stock_levels s
  JOIN unnest(%(skus)s::text[], %(whs)s::text[]) AS u(sku, warehouse)
    ON s.sku = u.sku AND s.warehouse = u.warehouse
 ORDER BY s.sku, s.warehouse
   FOR UPDATE OF s
"""

_UPDATE_ROWS = """
UPDATE stock_levels s
   SET on_hand = u.on_hand, version = nextval('stock_version_seq'), updated_at = now()
  FROM unnest(%(skus)s::text[], %(whs)s::text[], %(on_hand)s::bigint[])
       AS u(sku, warehouse, on_hand)
 WHERE s.sku = u.sku AND s.warehouse = u.warehouse
"""

_COPY_MOVEMENTS = (
    "COPY movements (id, idempotency_key, kind, sku, warehouse, to_warehouse, quantity, reason,"
    " accepted_at, trace_id) FROM STDIN"
)

_INSERT_DEAD = """
INSERT INTO movement_dead_letters (movement_id, idempotency_key, kind, sku, warehouse,
                                   to_warehouse, quantity, reason, deliveries, accepted_at,
                                   trace_id)
SELECT * FROM unnest(%(ids)s::uuid[], %(keys)s::text[], %(kinds)s::text[], %(skus)s::text[],
                     %(whs)s::text[], %(tos)s::text[], %(qtys)s::bigint[], %(reasons)s::text[],
                     %(deliveries)s::int[], %(accepted)s::timestamptz[], %(traces)s::text[])
ON CONFLICT DO NOTHING
"""

#: SQLSTATEs after which the same batch is simply tried again: serialization failure, deadlock,
#: and a unique violation (another worker recorded one of the keys first).
RETRY_SQLSTATES = frozenset({"40001", "40P01", "23505"})
#: SQLSTATE classes / codes that mean "the database is unavailable right now".
UNAVAILABLE_PREFIXES = ("08", "57P", "53")
UNAVAILABLE_SQLSTATES = frozenset({"25006"})  # read-only transaction: we reached a standby


def sqlstate_of(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None)


def classify(exc: BaseException) -> str:
    """'retry' (same batch again now), 'unavailable' (wait and retry) or 'poison' (the batch
    holds a movement that can never apply: split it to find which)."""
    state = sqlstate_of(exc)
    if state in RETRY_SQLSTATES:
        return "retry"
    if state is not None and (
        state.startswith(UNAVAILABLE_PREFIXES) or state in UNAVAILABLE_SQLSTATES
    ):
        return "unavailable"
    if state is None and isinstance(
        exc,
        (
            sa_exc.OperationalError,
            sa_exc.InterfaceError,
            sa_exc.TimeoutError,
            psycopg.OperationalError,
            psycopg.InterfaceError,
            OSError,
        ),
    ):
        return "unavailable"
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "unavailable"
    return "poison"


@dataclass
class Committed:
    """What one committed transaction did."""

    plan: Plan
    committed_at: float  # time.time() right after COMMIT
    changed_skus: set[str] = field(default_factory=set)


def _ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def _trace_id(movement: StreamMovement) -> str | None:
    if movement.traceparent and movement.traceparent.count("-") == 3:
        return movement.traceparent.split("-")[1]
    return None


class BatchApplier:
    def __init__(self, *, engine: Engine) -> None:
        self.engine = engine

    def apply(
        self,
        movements: Sequence[StreamMovement],
        *,
        dead: Sequence[tuple[StreamMovement, str]] = (),
        before_commit: Callable[[], None] | None = None,
    ) -> Committed:
        """Apply ``movements`` and record ``dead`` (already judged unappliable) in one
        transaction. Raises the database error untouched; the caller classifies it."""
        with self.engine.begin() as conn:
            plan = self._apply_in(conn, movements)
            plan.rejected.extend(dead)
            self._record_dead(conn, plan.rejected)
            if before_commit is not None:
                before_commit()
        committed_at = time.time()
        changed = {sku for sku, _ in plan.levels}
        return Committed(plan=plan, committed_at=committed_at, changed_skus=changed)

    def _apply_in(self, conn: Connection, movements: Sequence[StreamMovement]) -> Plan:
        if not movements:
            return Plan()
        keys = [m.idempotency_key for m in movements]
        seen: dict[str, UUID] = {
            row[0]: row[1] for row in conn.exec_driver_sql(_SEEN, {"keys": keys}).all()
        }
        fresh = [m for m in movements if m.idempotency_key not in seen]
        touched = touched_keys(fresh)
        levels: dict[tuple[str, str], Level] = {}
        if touched:
            skus = [k[0] for k in touched]
            whs = [k[1] for k in touched]
            conn.exec_driver_sql(_ENSURE_ROWS, {"skus": skus, "whs": whs})
            for row in conn.exec_driver_sql(_LOCK_ROWS, {"skus": skus, "whs": whs}).all():
                levels[(row[0], row[1])] = Level(on_hand=int(row[2]), reserved=int(row[3]))
        plan = plan_batch(movements=movements, levels=levels, seen=seen)
        if plan.levels:
            changed = list(plan.levels.items())
            conn.exec_driver_sql(
                _UPDATE_ROWS,
                {
                    "skus": [k[0] for k, _ in changed],
                    "whs": [k[1] for k, _ in changed],
                    "on_hand": [level.on_hand for _, level in changed],
                },
            )
        if plan.applied:
            self._copy_movements(conn, plan.applied)
        return plan

    @staticmethod
    def _copy_movements(conn: Connection, applied: Sequence[StreamMovement]) -> None:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(_COPY_MOVEMENTS) as copy:
            for m in applied:
                copy.write_row(
                    (
                        m.movement_id,
                        m.idempotency_key,
                        m.kind,
                        m.sku,
                        m.warehouse,
                        m.to_warehouse,
                        m.quantity,
                        m.reason,
                        _ms_to_datetime(m.accepted_at_ms),
                        _trace_id(m),
                    )
                )

    @staticmethod
    def _record_dead(conn: Connection, dead: Sequence[tuple[StreamMovement, str]]) -> None:
        if not dead:
            return
        conn.exec_driver_sql(
            _INSERT_DEAD,
            {
                "ids": [m.movement_id for m, _ in dead],
                "keys": [m.idempotency_key for m, _ in dead],
                "kinds": [m.kind for m, _ in dead],
                "skus": [m.sku for m, _ in dead],
                "whs": [m.warehouse for m, _ in dead],
                "tos": [m.to_warehouse for m, _ in dead],
                "qtys": [m.quantity for m, _ in dead],
                "reasons": [reason[:2000] for _, reason in dead],
                "deliveries": [m.deliveries for m, _ in dead],
                "accepted": [_ms_to_datetime(m.accepted_at_ms) for m, _ in dead],
                "traces": [_trace_id(m) for m, _ in dead],
            },
        )
