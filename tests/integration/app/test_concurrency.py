"""Many clients at once on one SKU: reservations and shipments never oversell, and the final
stock is exactly the arithmetic of what was accepted."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.integration.app.conftest import (
    Databases,
    Stack,
    make_item,
    stock_becomes,
    submit,
    wait_status,
)

INITIAL = 100
RESERVE_QTY = 3
SHIP_QTY = 2
RESERVATIONS = 40
SHIPMENTS = 40


def test_parallel_reservations_and_shipments_never_oversell(
    stack: Stack, databases: Databases
) -> None:
    api = stack.api(workers=2)
    stack.worker(INVENTORY_WORKER_BATCH_SIZE="5")
    stack.worker(INVENTORY_WORKER_BATCH_SIZE="5")
    with api.client() as client:
        sku = make_item(client)
        receive = submit(
            client, {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": INITIAL}
        )
        assert wait_status(client, receive.json()["id"])["status"] == "applied"

    def reserve(_: int) -> httpx.Response:
        with api.client() as c:
            return c.post(
                "/api/v1/reservations",
                json={"sku": sku, "warehouse": "W1", "quantity": RESERVE_QTY},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )

    def ship(_: int) -> httpx.Response:
        with api.client() as c:
            return submit(c, {"kind": "ship", "sku": sku, "warehouse": "W1", "quantity": SHIP_QTY})

    with ThreadPoolExecutor(max_workers=16) as pool:
        reservation_futures = [pool.submit(reserve, i) for i in range(RESERVATIONS)]
        ship_futures = [pool.submit(ship, i) for i in range(SHIPMENTS)]
        reservations = [f.result() for f in reservation_futures]
        ships = [f.result() for f in ship_futures]

    held = [r.json() for r in reservations if r.status_code == 201]
    refused = [r for r in reservations if r.status_code != 201]
    assert all(r.status_code == 409 for r in refused), [r.text for r in refused]
    assert all("available" in r.json()["detail"] for r in refused)
    assert all(s.status_code == 202 for s in ships)

    # Confirm half of the holds and release the others, concurrently too.
    def finish(pair: tuple[int, dict[str, str]]) -> httpx.Response:
        index, reservation = pair
        verb = "confirm" if index % 2 == 0 else "release"
        with api.client() as c:
            return c.post(f"/api/v1/reservations/{reservation['id']}/{verb}")

    with ThreadPoolExecutor(max_workers=16) as pool:
        finished = list(pool.map(finish, enumerate(held)))
    assert all(r.status_code == 200 for r in finished), [r.text for r in finished]
    confirmed = sum(1 for r in finished if r.json()["status"] == "confirmed")

    with api.client() as client:
        outcomes = [wait_status(client, s.json()["id"])["status"] for s in ships]
        applied = outcomes.count("applied")
        assert set(outcomes) <= {"applied", "dead_letter"}
        expected_on_hand = INITIAL - applied * SHIP_QTY - confirmed * RESERVE_QTY
        final = stock_becomes(client, sku, warehouse="W1", expected={"on_hand": expected_on_hand})

    assert final == {
        "warehouse": "W1",
        "on_hand": expected_on_hand,
        "reserved": 0,
        "available": expected_on_hand,
    }
    assert expected_on_hand >= 0
    # The shipments and holds that were refused were refused for a reason: stock ran out.
    assert len(held) * RESERVE_QTY + applied * SHIP_QTY <= INITIAL
    assert refused or outcomes.count("dead_letter") or expected_on_hand < SHIP_QTY + RESERVE_QTY
    assert databases.query("SELECT on_hand, reserved FROM stock_levels WHERE sku = %s", (sku,)) == [
        (expected_on_hand, 0)
    ]
    assert databases.query(
        "SELECT count(*) FROM movements WHERE sku = %s AND kind = 'ship'", (sku,)
    ) == [(applied,)]
