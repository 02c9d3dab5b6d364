"""The inventory's books, reconciled: what the stock levels say against what the movements and
reservations recorded in PostgreSQL add up to, and whether the movement stream has settled.

Used after fuzzing (nothing partial) and after the ingest faults of the chaos suite (nothing
acknowledged lost, nothing applied twice)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

Query = Callable[[str], list[tuple[Any, ...]]]

#: Per (SKU, warehouse): on hand and reserved as stored, against the applied movements (a transfer
#: moves stock between two warehouses), minus confirmed reservations, and the held ones.
DRIFT_SQL = """
WITH effects AS (
    SELECT sku, warehouse,
           CASE WHEN kind IN ('ship', 'transfer') THEN -quantity ELSE quantity END AS delta
      FROM movements
    UNION ALL
    SELECT sku, to_warehouse, quantity FROM movements WHERE kind = 'transfer'
    UNION ALL
    SELECT sku, warehouse, -quantity FROM reservations WHERE status = 'confirmed'
), expected AS (
    SELECT sku, warehouse, sum(delta) AS on_hand FROM effects GROUP BY sku, warehouse
), held AS (
    SELECT sku, warehouse, sum(quantity) AS reserved
      FROM reservations WHERE status = 'held' GROUP BY sku, warehouse
)
SELECT sku, warehouse,
       coalesce(s.on_hand, 0), coalesce(e.on_hand, 0),
       coalesce(s.reserved, 0), coalesce(h.reserved, 0)
  FROM stock_levels s
  FULL JOIN expected e USING (sku, warehouse)
  LEFT JOIN held h USING (sku, warehouse)
 WHERE coalesce(s.on_hand, 0) <> coalesce(e.on_hand, 0)
    OR coalesce(s.reserved, 0) <> coalesce(h.reserved, 0)
"""

#: Stock levels that break the rules the database also enforces.
BROKEN_SQL = """
SELECT sku, warehouse, on_hand, reserved FROM stock_levels
 WHERE reserved < 0 OR reserved > on_hand OR on_hand < 0
"""


def stock_drift(query: Query) -> list[tuple[Any, ...]]:
    """Rows (sku, warehouse, on hand, expected, reserved, expected) that do not add up."""
    return query(DRIFT_SQL) + query(BROKEN_SQL)


def stream_pending(*, redis_url: str, stream: str) -> int:
    """Entries delivered to a worker and not yet acknowledged: a batch in hand."""
    with redis.Redis.from_url(redis_url) as client:
        if not client.exists(stream):
            return 0
        return sum(int(g["pending"]) for g in client.xinfo_groups(stream))


def stream_backlog(*, redis_url: str, stream: str) -> int:
    """Entries of the movement stream not yet acknowledged by a worker (pending or not yet
    delivered to the group); 0 once every accepted movement was applied or dead-lettered."""
    with redis.Redis.from_url(redis_url) as client:
        if not client.exists(stream):
            return 0
        groups = client.xinfo_groups(stream)
        if not groups:
            return int(client.xlen(stream))
        return sum(int(g["pending"]) + int(g.get("lag") or 0) for g in groups)
