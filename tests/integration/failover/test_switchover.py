"""Planned switchover and a switchover drill on a real primary + streaming replica."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from controlplane.failover.local import LocalNodeControl
from controlplane.failover.nodes import Node, probe
from controlplane.failover.switchover import switchover, switchover_drill
from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from tests.support.backends import TEST_PG_CONF, BackendPool, launch

pytestmark = pytest.mark.integration


@pytest.fixture
def topology(
    backend_pool: BackendPool,
) -> Iterator[tuple[Node, Node, LocalNodeControl]]:
    primary = launch(backend_pool, PostgresPrimary, extra_conf=TEST_PG_CONF)
    replica = launch(backend_pool, PostgresReplica, primary=primary, slot="switch_replica")
    old = Node(name="node_a", host="127.0.0.1", port=primary.port)
    new = Node(name="switch_replica", host="127.0.0.1", port=replica.port)
    control = LocalNodeControl({old.name: primary, new.name: replica})
    yield old, new, control
    backend_pool.stop(replica)
    backend_pool.stop(primary)


def test_switchover_promotes_the_standby_and_the_old_primary_follows_it(
    topology: tuple[Node, Node, LocalNodeControl],
) -> None:
    old, new, control = topology
    with psycopg.connect(old.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE before_switch (id int)")
        conn.execute("INSERT INTO before_switch SELECT generate_series(1, 1000)")
    record = switchover(primary=old, standby=new, control=control)
    assert record.old_primary_following
    assert not probe(new).in_recovery
    old_status = probe(old)
    assert old_status.in_recovery
    assert old_status.streaming
    with psycopg.connect(new.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM before_switch").fetchone() == (1000,)
        conn.execute("INSERT INTO before_switch VALUES (1001)")
    with (
        psycopg.connect(old.dsn(), autocommit=True) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("INSERT INTO before_switch VALUES (0)")


def test_switchover_drill_measures_rto_and_loses_nothing(
    topology: tuple[Node, Node, LocalNodeControl],
) -> None:
    old, new, control = topology
    result, record = switchover_drill(
        database="inventory",
        primary=old,
        standby=new,
        control=control,
        rto_target=timedelta(minutes=15),
        rpo_target=timedelta(minutes=5),
    )
    assert record.old_primary_following
    assert result.lost_acknowledged_writes == 0
    assert result.acknowledged_writes > 50
    assert timedelta(0) < result.measured_rto < timedelta(seconds=30)
    assert result.succeeded
    print(f"\nswitchover drill: RTO {result.measured_rto.total_seconds():.2f} s")
