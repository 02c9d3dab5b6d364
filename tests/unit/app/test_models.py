"""Request bodies the API refuses (422) before anything is queued or written."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.models.movement import MovementCreate
from app.models.reservation import ReservationCreate
from app.models.warehouse import WarehouseCreate


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "ship", "sku": "S", "warehouse": "W", "quantity": -1}, "must be positive"),
        ({"kind": "receive", "sku": "S", "warehouse": "W", "quantity": 0}, "must be positive"),
        ({"kind": "adjust", "sku": "S", "warehouse": "W", "quantity": 0}, "non-zero"),
        ({"kind": "transfer", "sku": "S", "warehouse": "W", "quantity": 1}, "needs to_warehouse"),
        (
            {"kind": "transfer", "sku": "S", "warehouse": "W", "to_warehouse": "W", "quantity": 1},
            "two different warehouses",
        ),
        (
            {"kind": "ship", "sku": "S", "warehouse": "W", "to_warehouse": "X", "quantity": 1},
            "only allowed on a transfer",
        ),
        ({"kind": "steal", "sku": "S", "warehouse": "W", "quantity": 1}, "kind"),
        ({"kind": "ship", "sku": "bad sku!", "warehouse": "W", "quantity": 1}, "pattern"),
        ({"kind": "ship", "sku": "S", "warehouse": "W", "quantity": 1, "extra": 1}, "extra"),
        ({"kind": "ship", "sku": "S", "warehouse": "W", "quantity": 10**12}, "less than"),
    ],
)
def test_invalid_movements_are_refused_with_a_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        MovementCreate.model_validate(body)


def test_a_negative_adjustment_is_allowed() -> None:
    body = MovementCreate.model_validate(
        {"kind": "adjust", "sku": "S", "warehouse": "W", "quantity": -3, "reason": "count"}
    )
    assert body.quantity == -3


def test_reservations_need_a_positive_quantity() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        ReservationCreate.model_validate({"sku": "S", "warehouse": "W", "quantity": 0})


def test_codes_are_trimmed_and_bounded() -> None:
    assert WarehouseCreate.model_validate({"code": " W1 ", "name": "Main"}).code == "W1"
    with pytest.raises(ValidationError):
        WarehouseCreate.model_validate({"code": "W" * 65, "name": "Main"})
