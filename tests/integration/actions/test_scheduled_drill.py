"""The scheduled switchover drill, run by the control plane through the action gate on a real
PostgreSQL pair: measured, stored for the DR checks, audited — and nothing while not due."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.actions.database import FailoverService
from controlplane.actions.drills import LocalDrillRunner, ScheduledDrill, local_node_control
from controlplane.failover.fencing import LocalFencer
from controlplane.failover.local import LocalNodeControl
from controlplane.failover.nodes import Node, probe
from controlplane.runtime import Runtime
from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from controlplane.store.actions import KILL_SWITCH, set_flag
from controlplane.store.audit import list_audit
from controlplane.store.drills import list_drills
from tests.integration.actions.test_failover_service import runtime
from tests.support.backends import TEST_PG_CONF, BackendPool, launch
from tests.support.runtime import database_engine

pytestmark = pytest.mark.integration

__all__ = ["runtime"]  # the fixture, shared with the failover service's tests

SLOT = "drill_replica"


@dataclass
class Pair:
    nodes: list[Node]
    control: LocalNodeControl  # the drill's own: it restarts the old primary through it


@pytest.fixture
def pair(backend_pool: BackendPool) -> Iterator[Pair]:
    conf = {**TEST_PG_CONF, "synchronous_standby_names": f"'FIRST 1 ({SLOT})'"}
    primary = launch(backend_pool, PostgresPrimary, extra_conf=conf)
    replica = launch(backend_pool, PostgresReplica, primary=primary, slot=SLOT)
    nodes = [
        Node(name="primary", host="127.0.0.1", port=primary.port),
        Node(name=SLOT, host="127.0.0.1", port=replica.port),
    ]
    control = local_node_control(nodes, {"primary": primary.data_dir, SLOT: replica.data_dir})
    yield Pair(nodes=nodes, control=control)
    for node in nodes:  # also a server the drill restarted (not the pool's child)
        control.stop(node, clean=False)
    backend_pool.stop(replica)
    backend_pool.stop(primary)


def drill_for(runtime: Runtime, pair: Pair) -> tuple[ScheduledDrill, FailoverService]:
    engine = database_engine(runtime)
    data_dirs = {node.name: pair.control.data_dir(node) for node in pair.nodes}
    failover = FailoverService(
        engine=engine,
        nodes=pair.nodes,
        fencer=LocalFencer(data_dirs=data_dirs),
        rpo=timedelta(0),
        database="inventory",
    )
    drill = ScheduledDrill(
        engine=engine,
        runner=LocalDrillRunner(nodes=pair.nodes, control=pair.control, failover=failover),
        database="inventory",
        interval=timedelta(hours=24),
        rto_target=timedelta(minutes=15),
        rpo_target=timedelta(0),
    )
    return drill, failover


def test_a_due_drill_switches_over_is_stored_and_failover_stays_quiet(
    runtime: Runtime, pair: Pair
) -> None:
    node_list = pair.nodes
    drill, failover = drill_for(runtime, pair)
    failover.start()  # watching the primary the drill is about to stop on purpose
    try:
        entry = drill.run_if_due()
    finally:
        failover.stop()
    assert entry is not None
    assert (entry.action, entry.decision, entry.outcome) == ("run_drill", "taken", "succeeded")
    assert entry.fencing_token is not None
    assert "switchover primary → drill_replica" in (entry.outcome_detail or "")

    with runtime.database.reader() as session:
        (stored,) = list_drills(session, database="inventory")
        actions = [e.action for e in list_audit(session)]
    assert stored.kind == "switchover"
    assert stored.succeeded
    assert stored.lost_acknowledged_writes == 0
    assert stored.details["decision_id"] == entry.decision_id
    assert "failover_database" not in actions  # the planned stop was not taken for a failure
    assert not probe(node_list[1]).in_recovery  # the standby is the primary now
    assert probe(node_list[0]).in_recovery  # and the old primary follows it
    print(f"\nscheduled drill: {entry.outcome_detail}")

    assert drill.run_if_due() is None  # the drill just stored is fresh: nothing due


def test_the_kill_switch_refuses_the_drill_and_nothing_moves(runtime: Runtime, pair: Pair) -> None:
    node_list = pair.nodes
    with runtime.database.writer() as session:
        set_flag(session, name=KILL_SWITCH, enabled=True, at=datetime.now(UTC), by="ops")
    drill, _ = drill_for(runtime, pair)
    entry = drill.run_if_due()
    assert entry is not None
    assert entry.decision == "refused"
    assert entry.reason.startswith("kill_switch")
    assert not probe(node_list[0]).in_recovery
    with runtime.database.reader() as session:
        assert list_drills(session, database="inventory") == []
