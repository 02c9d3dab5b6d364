"""The API as a client sees it: resources, the write path, the cache, errors with reasons."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from controlplane.stack.backends import Redis
from tests.integration.app.conftest import (
    Databases,
    Stack,
    eventually,
    make_item,
    stock_becomes,
    stock_of,
    submit,
    unique,
    wait_status,
)


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    api = stack.api()
    stack.worker()
    with api.client() as client:
        yield client


def test_openapi_describes_every_resource(client: httpx.Client) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/api/v1/warehouses",
        "/api/v1/items/{sku}",
        "/api/v1/stock/{sku}",
        "/api/v1/movements",
        "/api/v1/movements/{movement_id}",
        "/api/v1/reservations/{reservation_id}/confirm",
    ):
        assert path in paths


def test_warehouses_and_items_are_created_read_and_listed_page_by_page(
    client: httpx.Client,
) -> None:
    prefix = unique("P")
    created = [f"{prefix}-{i}" for i in range(5)]
    for sku in created:
        assert (
            client.post("/api/v1/items", json={"sku": sku, "name": f"Bolt {sku}"}).status_code
            == 201
        )
    assert client.get(f"/api/v1/items/{created[0]}").json()["name"] == f"Bolt {created[0]}"

    def listed() -> list[str]:
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            params = {"limit": 2, "name_contains": prefix, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/items", params=params).json()
            assert len(page["items"]) <= 2
            seen.extend(item["sku"] for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return seen

    # Lists may be served by the replica: within its staleness bound they show every item.
    assert eventually(lambda: listed() == created, timeout=5, what="all items listed")

    code = unique("WH")
    assert (
        client.post("/api/v1/warehouses", json={"code": code, "name": "North"}).status_code == 201
    )
    again = client.post("/api/v1/warehouses", json={"code": code, "name": "North"})
    assert again.status_code == 409
    assert again.json()["code"] == "already_exists"
    assert client.get(f"/api/v1/warehouses/{code}").json()["name"] == "North"


def test_receive_then_ship_through_the_stream_updates_the_cached_stock(
    client: httpx.Client,
) -> None:
    sku = make_item(client)
    first = client.get(f"/api/v1/stock/{sku}")
    assert first.json() == {"sku": sku, "levels": [], "total_available": 0, "version": 0}

    accepted = submit(client, {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 10})
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["status"] == "accepted"
    assert body["status_url"].endswith(f"/api/v1/movements/{body['id']}")
    assert accepted.headers["Location"] == body["status_url"]
    status = wait_status(client, body["id"])
    assert status["status"] == "applied"
    assert status["quantity"] == 10

    # The worker invalidated the cached entry: reads show the new stock.
    stock_becomes(client, sku, warehouse="W1", expected={"on_hand": 10})
    cached = client.get(f"/api/v1/stock/{sku}")
    assert cached.headers["X-Stock-Source"] == "cache"
    ship = submit(client, {"kind": "ship", "sku": sku, "warehouse": "W1", "quantity": 4}).json()
    assert wait_status(client, ship["id"])["status"] == "applied"
    assert stock_becomes(client, sku, warehouse="W1", expected={"on_hand": 6}) == {
        "warehouse": "W1",
        "on_hand": 6,
        "reserved": 0,
        "available": 6,
    }


def test_a_movement_that_can_never_apply_is_dead_lettered_with_its_reason(
    client: httpx.Client,
) -> None:
    sku = make_item(client)
    ship = submit(client, {"kind": "ship", "sku": sku, "warehouse": "W1", "quantity": 3}).json()
    status = wait_status(client, ship["id"])
    assert status["status"] == "dead_letter"
    assert "insufficient stock" in status["reason"]
    assert "0 available" in status["reason"]
    assert stock_of(client, sku)["W1"]["on_hand"] == 0


def test_a_transfer_moves_stock_between_warehouses(client: httpx.Client) -> None:
    sku = make_item(client, warehouses=("W1", "W2"))
    receive = submit(client, {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 8})
    wait_status(client, receive.json()["id"])
    move = submit(
        client,
        {"kind": "transfer", "sku": sku, "warehouse": "W1", "to_warehouse": "W2", "quantity": 5},
    )
    assert wait_status(client, move.json()["id"])["status"] == "applied"
    stock_becomes(client, sku, warehouse="W2", expected={"on_hand": 5})
    levels = stock_of(client, sku)
    assert (levels["W1"]["on_hand"], levels["W2"]["on_hand"]) == (3, 5)
    assert client.get(f"/api/v1/stock/{sku}").json()["total_available"] == 8


def test_a_repeated_idempotency_key_is_answered_with_the_first_movement(
    client: httpx.Client, databases: Databases
) -> None:
    sku = make_item(client)
    key = uuid.uuid4().hex
    body = {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 2}
    first = submit(client, body, key=key).json()
    again = submit(client, body, key=key).json()
    assert again == {**first, "replayed": True}
    wait_status(client, first["id"])
    stock_becomes(client, sku, warehouse="W1", expected={"on_hand": 2})
    conflict = submit(client, {**body, "quantity": 3}, key=key)
    assert conflict.status_code == 409
    assert "different movement" in conflict.json()["detail"]
    assert databases.query("SELECT count(*) FROM movements WHERE sku = %s", (sku,)) == [(1,)]


def _queued(redis_server: Redis, stack: Stack) -> int:
    with redis_server.client() as redis_client:
        return int(redis_client.xlen(stack.base_env["INVENTORY_STREAM_KEY"]))


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"kind": "receive", "sku": "{sku}", "warehouse": "W1", "quantity": -5}, 422, "positive"),
        (
            {"kind": "ship", "sku": "NO-SUCH-SKU", "warehouse": "W1", "quantity": 1},
            422,
            "unknown SKU",
        ),
        (
            {"kind": "ship", "sku": "{sku}", "warehouse": "NOWHERE", "quantity": 1},
            422,
            "unknown warehouse",
        ),
        ({"kind": "ship", "sku": "{sku}", "warehouse": "W1"}, 422, "quantity"),
        ("{not json", 422, "JSON"),
    ],
)
def test_invalid_movements_are_refused_with_a_reason_and_nothing_is_queued(
    client: httpx.Client,
    stack: Stack,
    redis_server: Redis,
    databases: Databases,
    body: object,
    status: int,
    reason: str,
) -> None:
    sku = make_item(client)
    before = _queued(redis_server, stack)
    headers = {"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
    if isinstance(body, dict):
        content = httpx.Request(
            "POST",
            "/",
            json={k: (v.format(sku=sku) if isinstance(v, str) else v) for k, v in body.items()},
        ).content
    else:
        content = str(body).encode()
    response = client.post("/api/v1/movements", content=content, headers=headers)
    assert response.status_code == status
    assert reason.lower() in response.json()["detail"].lower()
    assert _queued(redis_server, stack) == before
    assert databases.query("SELECT count(*) FROM movements WHERE sku = %s", (sku,)) == [(0,)]


def test_a_movement_without_idempotency_key_is_refused(client: httpx.Client) -> None:
    sku = make_item(client)
    response = client.post(
        "/api/v1/movements", json={"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 1}
    )
    assert response.status_code == 422
    assert "idempotency-key" in response.json()["detail"].lower()


def test_unknown_things_in_the_path_are_404_and_oversize_pages_are_422(
    client: httpx.Client,
) -> None:
    missing = client.get("/api/v1/stock/NO-SUCH-SKU")
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "detail": "item 'NO-SUCH-SKU' does not exist"}
    assert client.get(f"/api/v1/movements/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/api/v1/reservations/{uuid.uuid4()}").status_code == 404
    oversize = client.get("/api/v1/items", params={"limit": 501})
    assert oversize.status_code == 422
    assert "maximum page size 500" in oversize.json()["detail"]
    assert client.get("/api/v1/stock", params={"limit": 0}).status_code == 422
    bad_cursor = client.get("/api/v1/movements", params={"cursor": "nope"})
    assert bad_cursor.status_code == 422


def test_reservations_hold_confirm_and_release_stock(client: httpx.Client) -> None:
    sku = make_item(client)
    wait_status(
        client,
        submit(client, {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 10}).json()[
            "id"
        ],
    )
    hold = client.post("/api/v1/reservations", json={"sku": sku, "warehouse": "W1", "quantity": 4})
    assert hold.status_code == 201
    assert stock_of(client, sku)["W1"] == {
        "warehouse": "W1",
        "on_hand": 10,
        "reserved": 4,
        "available": 6,
    }
    too_much = client.post(
        "/api/v1/reservations", json={"sku": sku, "warehouse": "W1", "quantity": 7}
    )
    assert too_much.status_code == 409
    assert too_much.json()["detail"].endswith("6 available")

    confirmed = client.post(f"/api/v1/reservations/{hold.json()['id']}/confirm")
    assert confirmed.json()["status"] == "confirmed"
    assert stock_of(client, sku)["W1"]["on_hand"] == 6
    again = client.post(f"/api/v1/reservations/{hold.json()['id']}/release")
    assert again.status_code == 409
    assert "it is confirmed" in again.json()["detail"]

    second = client.post(
        "/api/v1/reservations", json={"sku": sku, "warehouse": "W1", "quantity": 6}
    ).json()
    assert client.post(f"/api/v1/reservations/{second['id']}/release").json()["status"] == (
        "released"
    )
    assert stock_of(client, sku)["W1"]["available"] == 6


def test_a_held_reservation_expires_and_returns_its_stock(client: httpx.Client) -> None:
    sku = make_item(client)
    wait_status(
        client,
        submit(client, {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 5}).json()[
            "id"
        ],
    )
    hold = client.post(
        "/api/v1/reservations",
        json={"sku": sku, "warehouse": "W1", "quantity": 5, "ttl_seconds": 1},
    ).json()
    assert stock_of(client, sku)["W1"]["available"] == 0
    expired = eventually(
        lambda: client.get(f"/api/v1/reservations/{hold['id']}").json()["status"] == "expired",
        timeout=15,
        what="the sweeper expiring the hold",
    )
    assert expired
    assert stock_of(client, sku)["W1"]["available"] == 5


def test_a_replayed_reservation_key_returns_the_first_reservation(client: httpx.Client) -> None:
    sku = make_item(client)
    wait_status(
        client,
        submit(client, {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 5}).json()[
            "id"
        ],
    )
    body = {"sku": sku, "warehouse": "W1", "quantity": 2}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = client.post("/api/v1/reservations", json=body, headers=headers)
    second = client.post("/api/v1/reservations", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert stock_of(client, sku)["W1"]["reserved"] == 2


def test_probes(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert ready.json()["status"] == "ok"
    assert checks["postgresql"]["ok"]
    assert checks["redis"]["ok"]
    assert checks["replica"]["configured"] is True


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (
            "/api/v1/reservations",
            {"sku": "NO-SUCH-SKU", "warehouse": "W1", "quantity": 1},
            "unknown SKU",
        ),
        (
            "/api/v1/reservations",
            {"sku": "{sku}", "warehouse": "W1", "quantity": -2},
            "greater than 0",
        ),
        (
            "/api/v1/reservations",
            {"sku": "{sku}", "warehouse": "NOWHERE", "quantity": 1},
            "unknown warehouse",
        ),
        ("/api/v1/items", {"sku": "has space", "name": "x"}, "pattern"),
        ("/api/v1/warehouses", {"code": "W9"}, "name: field required"),
    ],
)
def test_invalid_requests_elsewhere_are_422_with_a_reason_and_write_nothing(
    client: httpx.Client, databases: Databases, path: str, body: dict[str, object], reason: str
) -> None:
    sku = make_item(client)
    payload = {k: (v.format(sku=sku) if isinstance(v, str) else v) for k, v in body.items()}
    response = client.post(path, json=payload)
    assert response.status_code == 422
    assert reason.lower() in response.json()["detail"].lower()
    assert databases.query("SELECT count(*) FROM reservations WHERE sku = %s", (sku,)) == [(0,)]
    assert databases.query("SELECT count(*) FROM items WHERE sku = 'has space'") == [(0,)]
    assert databases.query("SELECT count(*) FROM warehouses WHERE code = 'W9'") == [(0,)]
