"""Deciding a batch of movements: order, atomicity, duplicates, the reasons given."""

from __future__ import annotations

import uuid

import pytest

from app.services.apply_plan import (
    Level,
    MalformedMessage,
    StreamMovement,
    effects,
    plan_batch,
    touched_keys,
)


def movement(
    kind: str, qty: int, *, key: str | None = None, wh: str = "W1", to: str | None = None
) -> StreamMovement:
    return StreamMovement(
        entry_id="1-0",
        movement_id=uuid.uuid4(),
        idempotency_key=key or uuid.uuid4().hex,
        kind=kind,
        sku="SKU-1",
        warehouse=wh,
        to_warehouse=to,
        quantity=qty,
        reason=None,
        accepted_at_ms=1_700_000_000_000,
    )


def test_movements_apply_in_stream_order_and_a_ship_that_would_go_negative_is_rejected() -> None:
    batch = [
        movement("receive", 5),
        movement("ship", 7),
        movement("receive", 3),
        movement("ship", 7),
    ]
    plan = plan_batch(movements=batch, levels={}, seen={})

    assert [m.kind for m in plan.applied] == ["receive", "receive", "ship"]
    assert [m for m, _ in plan.rejected] == [batch[1]]
    assert "5 available" in plan.rejected[0][1]
    assert plan.levels == {("SKU-1", "W1"): Level(on_hand=1, reserved=0)}


def test_reserved_stock_is_not_available_to_ships_or_negative_adjustments() -> None:
    levels = {("SKU-1", "W1"): Level(on_hand=10, reserved=8)}
    plan = plan_batch(
        movements=[movement("ship", 3), movement("adjust", -3), movement("adjust", -2)],
        levels=levels,
        seen={},
    )
    assert len(plan.rejected) == 2
    assert all("2 available (10 on hand, 8 reserved)" in reason for _, reason in plan.rejected)
    assert plan.levels[("SKU-1", "W1")] == Level(on_hand=8, reserved=8)
    assert levels[("SKU-1", "W1")] == Level(on_hand=10, reserved=8), "input is not modified"


def test_a_transfer_moves_stock_wholly_or_not_at_all() -> None:
    levels = {("SKU-1", "W1"): Level(on_hand=4, reserved=0)}
    too_big = movement("transfer", 5, to="W2")
    fits = movement("transfer", 4, to="W2")
    plan = plan_batch(movements=[too_big, fits], levels=levels, seen={})

    assert [m for m, _ in plan.rejected] == [too_big]
    assert plan.applied == [fits]
    assert plan.levels == {
        ("SKU-1", "W1"): Level(on_hand=0, reserved=0),
        ("SKU-1", "W2"): Level(on_hand=4, reserved=0),
    }


def test_keys_recorded_before_or_earlier_in_the_batch_are_skipped_as_duplicates() -> None:
    first = movement("receive", 2, key="k-1")
    again = movement("receive", 2, key="k-1")
    old = movement("receive", 9, key="k-old")
    holder = uuid.uuid4()
    plan = plan_batch(movements=[first, again, old], levels={}, seen={"k-old": holder})

    assert plan.applied == [first]
    assert plan.duplicates == [(again, first.movement_id), (old, holder)]
    assert plan.levels == {("SKU-1", "W1"): Level(on_hand=2, reserved=0)}


def test_touched_keys_are_sorted_and_include_transfer_destinations() -> None:
    keys = touched_keys([movement("ship", 1, wh="W9"), movement("transfer", 1, wh="W5", to="W1")])
    assert keys == [("SKU-1", "W1"), ("SKU-1", "W5"), ("SKU-1", "W9")]
    assert effects(movement("adjust", -4)) == [(("SKU-1", "W1"), -4)]


def test_stream_fields_round_trip() -> None:
    original = movement("transfer", 3, to="W2")
    fields = {k.encode(): v.encode() for k, v in original.to_fields().items()}
    assert StreamMovement.from_fields("5-1", fields) == StreamMovement(
        **{**original.__dict__, "entry_id": "5-1"}
    )


@pytest.mark.parametrize(
    "fields",
    [
        {b"m": b'{"kind": "steal"}'},
        {b"m": b'{"id": "not-a-uuid", "key": "k", "kind": "ship"}'},
        {b"m": b'{"id": "9c1c5f8e-1b7e-4a4e-9a43-3e5d0c1f2a3b", "key": "k", "kind": "ship"}'},
        {b"m": b"[1, 2]"},
        {b"m": b"{not json"},
        {b"kind": b"ship"},
    ],
)
def test_entries_that_are_not_movements_are_reported(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(MalformedMessage, match=r"1-1|kind"):
        StreamMovement.from_fields("1-1", fields)
