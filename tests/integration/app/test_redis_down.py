"""Redis stopped: reads keep answering from PostgreSQL, writes are refused with 503 and
Retry-After (never accepted and lost), /readyz says degraded; all recovers when Redis is back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.stack.backends import Redis
from tests.integration.app.conftest import (
    Databases,
    Stack,
    eventually,
    make_item,
    stack_env,
    stock_becomes,
    stock_of,
    submit,
    unique,
    wait_status,
)
from tests.support.backends import BackendPool


@pytest.fixture(scope="module")
def own_redis(backend_pool: BackendPool) -> Iterator[Redis]:
    server = backend_pool.start(
        Redis(
            settings=backend_pool.settings,
            workdir=backend_pool.workdir(Redis.name),
            ports=backend_pool.ports_for(Redis.name),
        )
    )
    yield server
    backend_pool.stop(server)


@pytest.fixture(scope="module")
def redis_stack(
    tmp_path_factory: pytest.TempPathFactory, databases: Databases, own_redis: Redis
) -> Iterator[Stack]:
    env = stack_env(dbs=databases, redis=own_redis, stream=unique("inventory:movements"))
    stack = Stack(tmp=Path(tmp_path_factory.mktemp("redis-down")), base_env=env)
    yield stack
    stack.stop_all()


def test_redis_down_reads_answer_writes_refused_then_recovery(
    redis_stack: Stack, own_redis: Redis, databases: Databases
) -> None:
    stack = redis_stack
    api = stack.api()
    stack.worker()
    with api.client() as client:
        sku = make_item(client)
        received = submit(
            client, {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 10}
        )
        assert wait_status(client, received.json()["id"])["status"] == "applied"
        stock_becomes(client, sku, warehouse="W1", expected={"on_hand": 10})
        assert client.get(f"/api/v1/stock/{sku}").headers["X-Stock-Source"] == "cache"

        own_redis.stop()

        # Reads: still correct, now from PostgreSQL.
        read = client.get(f"/api/v1/stock/{sku}")
        assert read.status_code == 200
        assert read.headers["X-Stock-Source"] in ("primary", "replica")
        assert read.json()["levels"][0]["on_hand"] == 10
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["redis"]["ok"] is False

        # Queued writes: refused, with a reason and when to retry; nothing is written.
        refused = submit(client, {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 5})
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) > 0
        assert "nothing was queued" in refused.json()["detail"]

        # Reservations need only PostgreSQL: they keep working, and reads reflect them at once.
        hold = client.post(
            "/api/v1/reservations", json={"sku": sku, "warehouse": "W1", "quantity": 4}
        )
        assert hold.status_code == 201
        assert stock_of(client, sku)["W1"]["available"] == 6

        own_redis.start()
        eventually(
            lambda: client.get("/readyz").json()["status"] == "ok", timeout=30, what="ready again"
        )
        key = uuid.uuid4().hex
        again = eventually(
            lambda: (
                r
                if (
                    r := submit(
                        client,
                        {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 5},
                        key=key,
                    )
                ).status_code
                == 202
                else None
            ),
            timeout=30,
            what="a movement accepted after Redis is back",
        )
        assert wait_status(client, again.json()["id"])["status"] == "applied"
        assert stock_becomes(client, sku, warehouse="W1", expected={"on_hand": 15}) == {
            "warehouse": "W1",
            "on_hand": 15,
            "reserved": 4,
            "available": 11,
        }
    assert databases.query("SELECT sum(quantity) FROM movements WHERE sku = %s", (sku,)) == [(15,)]
