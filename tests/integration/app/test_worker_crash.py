"""A worker killed in the middle of its work: after a restart every accepted movement is applied
exactly once."""

from __future__ import annotations

import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import redis

from controlplane.stack.backends import Redis
from tests.integration.app.conftest import (
    Api,
    Databases,
    Stack,
    eventually,
    make_item,
    stock_becomes,
)


def submit_receives(api: Api, *, sku: str, count: int) -> list[str]:
    """Queue ``count`` receives of one unit; returns the movement ids (all must be 202)."""

    def chunk(n: int) -> list[str]:
        ids = []
        with api.client() as client:
            for _ in range(n):
                response = client.post(
                    "/api/v1/movements",
                    json={"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 1},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
        return ids

    with ThreadPoolExecutor(max_workers=8) as pool:
        parts = list(pool.map(chunk, [count // 8] * 8))
    return [movement_id for part in parts for movement_id in part]


def applied(databases: Databases, sku: str) -> int:
    return int(databases.query("SELECT count(*) FROM movements WHERE sku = %s", (sku,))[0][0])


def pending(redis_server: Redis, stack: Stack) -> int:
    stream = stack.base_env["INVENTORY_STREAM_KEY"]
    with redis.Redis(host="127.0.0.1", port=redis_server.port) as client:
        groups = client.xinfo_groups(stream)
        return sum(int(g["pending"]) for g in groups)


def assert_exactly_once(*, api: Api, databases: Databases, sku: str, ids: list[str]) -> None:
    count = len(ids)
    assert databases.query(
        "SELECT count(*), count(DISTINCT idempotency_key) FROM movements WHERE sku = %s", (sku,)
    ) == [(count, count)]
    with api.client() as client:
        stock_becomes(client, sku, warehouse="W1", expected={"on_hand": count})
        for movement_id in ids[:: max(1, count // 20)]:
            assert client.get(f"/api/v1/movements/{movement_id}").json()["status"] == "applied"


def test_sigkill_in_the_middle_of_a_batch_then_restart_applies_everything_once(
    stack: Stack, databases: Databases, redis_server: Redis
) -> None:
    api = stack.api()
    with api.client() as client:
        sku = make_item(client)
    ids = submit_receives(api, sku=sku, count=2400)

    worker = stack.worker(INVENTORY_WORKER_BATCH_SIZE="20")
    # Kill it while it holds a batch it has read and not acknowledged (on a busy machine the
    # worker can be caught between batches, with nothing pending; wait for a moment it is not).
    eventually(
        lambda: applied(databases, sku) >= 60 and pending(redis_server, stack) > 0,
        timeout=60,
        interval=0.005,
        what="first batches applied and a batch in hand",
    )
    worker.kill(signal.SIGKILL)
    after_kill = applied(databases, sku)
    assert after_kill < len(ids), "the worker was killed before it finished"
    assert pending(redis_server, stack) > 0, "the killed worker left entries pending"

    restarted = stack.worker(INVENTORY_WORKER_BATCH_SIZE="200")
    eventually(lambda: applied(databases, sku) == len(ids), timeout=120, what="all applied")
    eventually(lambda: pending(redis_server, stack) == 0, timeout=30, what="nothing pending")
    assert_exactly_once(api=api, databases=databases, sku=sku, ids=ids)
    restarted.stop()


def test_a_crash_inside_the_transaction_loses_nothing_and_applies_nothing_twice(
    stack: Stack, databases: Databases, redis_server: Redis
) -> None:
    api = stack.api()
    with api.client() as client:
        sku = make_item(client)
    ids = submit_receives(api, sku=sku, count=200)

    crashing = stack.worker(
        INVENTORY_WORKER_BATCH_SIZE="40",
        INVENTORY_WORKER_CRASH_AFTER_COMMITS="2",
        INVENTORY_WORKER_CRASH_POINT="before_commit",
    )
    eventually(lambda: not crashing.alive(), timeout=60, what="the fault-injected crash")
    assert "SIGKILL inside the open transaction" in crashing.log_tail(50)
    assert applied(databases, sku) == 40, "the second batch was rolled back with the process"
    assert pending(redis_server, stack) == 40

    recovering = stack.worker(INVENTORY_WORKER_BATCH_SIZE="40")
    eventually(lambda: applied(databases, sku) == len(ids), timeout=60, what="all applied")
    eventually(lambda: pending(redis_server, stack) == 0, timeout=30, what="nothing pending")
    assert_exactly_once(api=api, databases=databases, sku=sku, ids=ids)
    assert "claimed 40 pending movements" in recovering.log_tail(400)
    recovering.stop()


def test_a_crash_between_commit_and_acknowledge_does_not_apply_twice(
    stack: Stack, databases: Databases, redis_server: Redis
) -> None:
    api = stack.api()
    with api.client() as client:
        sku = make_item(client)
    ids = submit_receives(api, sku=sku, count=200)

    crashing = stack.worker(
        INVENTORY_WORKER_BATCH_SIZE="40", INVENTORY_WORKER_CRASH_AFTER_COMMITS="2"
    )
    eventually(lambda: not crashing.alive(), timeout=60, what="the fault-injected crash")
    assert crashing.popen is not None
    assert crashing.popen.returncode == -signal.SIGKILL
    committed = applied(databases, sku)
    assert committed == 80, "two batches of 40 committed, the second one never acknowledged"

    recovering = stack.worker(INVENTORY_WORKER_BATCH_SIZE="40")
    eventually(lambda: applied(databases, sku) == len(ids), timeout=60, what="all applied")
    eventually(lambda: pending(redis_server, stack) == 0, timeout=30, what="nothing pending")
    assert_exactly_once(api=api, databases=databases, sku=sku, ids=ids)
    assert "claimed 40 pending movements" in recovering.log_tail(400)
    recovering.stop()
