"""Deciding a batch of stock movements: pure functions over locked stock levels, no I/O.

The worker locks the stock rows a batch touches, reads them, asks :func:`plan_batch` which
movements apply (in stream order) and which cannot (they would make available stock negative),
then writes the result with a few set-based statements. Keeping the decision here makes the rules
testable without a database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

Key = tuple[str, str]  # (sku, warehouse)

#: The stream entry has one field, ``m``, holding the movement as compact JSON with these keys.
STREAM_FIELD = "m"
STREAM_KEYS = ("id", "key", "kind", "sku", "wh", "to", "qty", "reason", "ts", "tp", "ts8")


class MalformedMessage(ValueError):
    """A stream entry that is not a movement this code can read."""


@dataclass(frozen=True)
class StreamMovement:
    """A movement as carried by the stream (``entry_id`` is the Redis stream entry id)."""

    entry_id: str
    movement_id: UUID
    idempotency_key: str
    kind: str
    sku: str
    warehouse: str
    to_warehouse: str | None
    quantity: int
    reason: str | None
    accepted_at_ms: int
    traceparent: str | None = None
    tracestate: str | None = None
    deliveries: int = 1

    @classmethod
    def from_fields(cls, entry_id: str, fields: Mapping[bytes, bytes]) -> StreamMovement:
        try:
            raw = fields[STREAM_FIELD.encode()]
            get = json.loads(raw)
            if not isinstance(get, dict):
                raise MalformedMessage(f"stream entry {entry_id} holds {type(get).__name__}")
            kind = get["kind"]
            if kind not in {"receive", "ship", "transfer", "adjust"}:
                raise MalformedMessage(f"stream entry {entry_id}: unknown kind {kind!r}")
            return cls(
                entry_id=entry_id,
                movement_id=UUID(get["id"]),
                idempotency_key=str(get["key"]),
                kind=kind,
                sku=str(get["sku"]),
                warehouse=str(get["wh"]),
                to_warehouse=get.get("to") or None,
                quantity=int(get["qty"]),
                reason=get.get("reason") or None,
                accepted_at_ms=int(get["ts"]),
                traceparent=get.get("tp") or None,
                tracestate=get.get("ts8") or None,
            )
        except MalformedMessage:
            raise
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise MalformedMessage(f"stream entry {entry_id} is not a movement: {exc!r}") from exc

    def to_json(self) -> str:
        """The stream entry's payload (compact JSON, no empty optional keys)."""
        doc: dict[str, object] = {
            "id": str(self.movement_id),
            "key": self.idempotency_key,
            "kind": self.kind,
            "sku": self.sku,
            "wh": self.warehouse,
            "qty": self.quantity,
            "ts": self.accepted_at_ms,
        }
        if self.to_warehouse:
            doc["to"] = self.to_warehouse
        if self.reason:
            doc["reason"] = self.reason
        if self.traceparent:
            doc["tp"] = self.traceparent
        if self.tracestate:
            doc["ts8"] = self.tracestate
        return json.dumps(doc, separators=(",", ":"))

    def to_fields(self) -> dict[str, str]:
        return {STREAM_FIELD: self.to_json()}


def effects(movement: StreamMovement) -> list[tuple[Key, int]]:
    """Changes of on-hand stock a movement makes, per (SKU, warehouse)."""
    src = (movement.sku, movement.warehouse)
    qty = movement.quantity
    if movement.kind == "receive":
        return [(src, qty)]
    if movement.kind == "ship":
        return [(src, -qty)]
    if movement.kind == "adjust":
        return [(src, qty)]
    if movement.kind == "transfer":
        if movement.to_warehouse is None:
            raise MalformedMessage(f"transfer {movement.movement_id} has no destination")
        return [(src, -qty), ((movement.sku, movement.to_warehouse), qty)]
    raise MalformedMessage(f"unknown movement kind {movement.kind!r}")


def touched_keys(movements: Iterable[StreamMovement]) -> list[Key]:
    """Every (SKU, warehouse) the movements change, sorted (the order rows are locked in)."""
    keys: set[Key] = set()
    for movement in movements:
        keys.update(key for key, _ in effects(movement))
    return sorted(keys)


@dataclass
class Level:
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass
class Plan:
    applied: list[StreamMovement] = field(default_factory=list)
    rejected: list[tuple[StreamMovement, str]] = field(default_factory=list)
    #: Movements whose idempotency key was applied or dead-lettered before (or earlier in the
    #: batch), with the id of the movement that holds the key.
    duplicates: list[tuple[StreamMovement, UUID]] = field(default_factory=list)
    #: Final levels of every row whose on-hand stock changed.
    levels: dict[Key, Level] = field(default_factory=dict)


def plan_batch(
    *,
    movements: Sequence[StreamMovement],
    levels: Mapping[Key, Level],
    seen: Mapping[str, UUID],
) -> Plan:
    """Decide, in order, which movements apply; a movement applies wholly or not at all.

    ``levels`` holds the current (locked) rows; a missing row counts as zero stock. ``seen`` maps
    idempotency keys already recorded to the movement id holding them.
    """
    plan = Plan()
    current = {key: Level(level.on_hand, level.reserved) for key, level in levels.items()}
    keys_in_batch: dict[str, UUID] = dict(seen)
    changed: set[Key] = set()
    for movement in movements:
        holder = keys_in_batch.get(movement.idempotency_key)
        if holder is not None:
            plan.duplicates.append((movement, holder))
            continue
        keys_in_batch[movement.idempotency_key] = movement.movement_id
        reason = _refusal(movement, current)
        if reason is not None:
            plan.rejected.append((movement, reason))
            continue
        for key, delta in effects(movement):
            level = current.setdefault(key, Level(0, 0))
            level.on_hand += delta
            changed.add(key)
        plan.applied.append(movement)
    plan.levels = {key: current[key] for key in sorted(changed)}
    return plan


def _refusal(movement: StreamMovement, current: Mapping[Key, Level]) -> str | None:
    for (sku, warehouse), delta in effects(movement):
        if delta >= 0:
            continue
        level = current.get((sku, warehouse), Level(0, 0))
        if level.available + delta < 0:
            return (
                f"insufficient stock: {movement.kind} of {-delta} {sku} from {warehouse} "
                f"needs {-delta} available, {level.available} available "
                f"({level.on_hand} on hand, {level.reserved} reserved)"
            )
    return None
