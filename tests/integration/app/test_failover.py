"""Failover: the primary stops, the replica is promoted, and the running API and workers resume
writes without a restart (multi-host DSN with target_session_attrs=read-write, checked pools)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from controlplane.stack.backends import PostgresPrimary, PostgresReplica, Redis
from tests.integration.app.conftest import (
    Databases,
    Stack,
    create_database,
    eventually,
    make_item,
    stack_env,
    stock_becomes,
    submit,
    unique,
    wait_status,
)
from tests.support.backends import TEST_PG_CONF, BackendPool


@pytest.fixture(scope="module")
def pair(backend_pool: BackendPool) -> Iterator[tuple[PostgresPrimary, PostgresReplica]]:
    primary = backend_pool.start(
        PostgresPrimary(
            settings=backend_pool.settings,
            workdir=backend_pool.workdir("failover-primary"),
            ports=backend_pool.ports_for(PostgresPrimary.name),
            extra_conf=TEST_PG_CONF,
        )
    )
    replica = backend_pool.start(
        PostgresReplica(
            settings=backend_pool.settings,
            workdir=backend_pool.workdir("failover-replica"),
            ports=backend_pool.ports_for(PostgresReplica.name),
            primary=primary,
        )
    )
    yield primary, replica
    backend_pool.stop(replica)
    backend_pool.stop(primary)


def test_promoted_replica_takes_the_writes_without_a_restart(
    pair: tuple[PostgresPrimary, PostgresReplica],
    redis_server: Redis,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    primary, replica = pair
    databases = Databases(name=create_database(primary), primary=primary, replica=replica)
    env = stack_env(dbs=databases, redis=redis_server, stream=unique("inventory:movements"))
    stack = Stack(tmp=Path(tmp_path_factory.mktemp("failover")), base_env=env)
    try:
        api = stack.api()
        stack.worker()
        with api.client() as client:
            sku = make_item(client)
            first = submit(
                client, {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 7}
            )
            assert wait_status(client, first.json()["id"])["status"] == "applied"

            # Let the replica catch up, then lose the primary and promote the replica.
            with psycopg.connect(primary.dsn(), autocommit=True) as conn:
                row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
                assert row is not None
                lsn = row[0]
            with psycopg.connect(replica.dsn(), autocommit=True) as conn:
                eventually(
                    lambda: (
                        conn.execute(
                            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
                        ).fetchone()
                        == (True,)
                    ),
                    what="replica caught up",
                )
            primary.stop()
            with psycopg.connect(replica.dsn(), autocommit=True) as conn:
                conn.execute("SELECT pg_promote(wait => true)")

            # The same API process and the same worker carry on with the new primary.
            hold = eventually(
                lambda: (
                    r
                    if (
                        r := client.post(
                            "/api/v1/reservations",
                            json={"sku": sku, "warehouse": "W1", "quantity": 2},
                            headers={"Idempotency-Key": "failover-hold"},
                        )
                    ).status_code
                    in (200, 201)
                    else None
                ),
                timeout=60,
                what="a reservation written after the failover",
            )
            assert hold.json()["status"] == "held"
            key = uuid.uuid4().hex
            second = eventually(
                lambda: (
                    r
                    if (
                        r := submit(
                            client,
                            {"kind": "receive", "sku": sku, "warehouse": "W1", "quantity": 3},
                            key=key,
                        )
                    ).status_code
                    == 202
                    else None
                ),
                timeout=30,
                what="a movement accepted after the failover",
            )
            assert wait_status(client, second.json()["id"], timeout=60)["status"] == "applied"
            assert stock_becomes(client, sku, warehouse="W1", expected={"on_hand": 10}) == {
                "warehouse": "W1",
                "on_hand": 10,
                "reserved": 2,
                "available": 8,
            }
            assert client.get("/readyz").status_code == 200
        with psycopg.connect(replica.dsn(databases.name)) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
            assert conn.execute(
                "SELECT count(*) FROM movements WHERE sku = %s", (sku,)
            ).fetchone() == (2,)
    finally:
        stack.stop_all()
