"""The Patroni driver on a real cluster, and switchovers the control plane drives through it:
the scheduled drill under the numbered write probe (stored, read by the DR checks) and an
operator's switchover_database, approved, through the gate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.actions.drills import ScheduledDrill
from controlplane.actions.patroni import LEADER_CHANGE, PatroniDrillRunner
from controlplane.actions.service import ActionService
from controlplane.api.app import create_app
from controlplane.core.processes import free_ports
from controlplane.core.security import Role
from controlplane.failover.driver import DriverRefused, DriverUnavailable
from controlplane.failover.patroni import PatroniDriver
from controlplane.runtime import Runtime
from controlplane.stack.patroni import PatroniCluster
from controlplane.store.actions import resolve_pending
from controlplane.store.audit import list_audit
from controlplane.store.drills import list_drills
from controlplane.store.tokens import create_token
from tests.integration.patroni.control import (
    dr_findings,
    patroni_watch,
    urls,
)
from tests.support.kube import wait_for
from tests.support.runtime import database_engine, leading_runtime
from tests.unit.controlplane.asgi import AppClient
from tests.unit.controlplane.conftest import settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with leading_runtime(tmp_path) as started:
        yield started


def synchronous(cluster: PatroniCluster) -> PatroniDriver:
    """A driver on ``cluster`` once its replica is the synchronous standby."""
    driver = PatroniDriver(urls=urls(cluster))
    wait_for(
        lambda: any(m.synchronous for m in driver.cluster().members),
        timeout=30,
        what="a synchronous standby",
    )
    return driver


def test_the_cluster_as_patroni_reports_it_even_with_a_dead_endpoint_first(
    patroni_cluster: PatroniCluster,
) -> None:
    (dead,) = free_ports(1)
    driver = PatroniDriver(urls=[f"http://127.0.0.1:{dead}", *urls(patroni_cluster)])
    try:
        wait_for(
            lambda: any(m.synchronous for m in driver.cluster().members),
            timeout=30,
            what="a synchronous standby",
        )
        state = driver.cluster()
    finally:
        driver.close()
    assert state.leader is not None
    assert state.leader.name == "member-1"
    (replica,) = state.replicas
    assert (replica.name, replica.role, replica.state) == ("member-2", "sync_standby", "streaming")
    assert replica.lag_bytes == 0
    assert (replica.host, replica.port) == ("127.0.0.1", patroni_cluster.member("member-2").port)
    assert state.leader.timeline == 1
    assert not state.paused


def test_patroni_refusals_carry_its_reason(patroni_cluster: PatroniCluster) -> None:
    driver = PatroniDriver(urls=urls(patroni_cluster))
    try:
        with pytest.raises(DriverRefused) as refused:
            driver.failover(candidate="member-9")
    finally:
        driver.close()
    assert refused.value.status == 412
    assert refused.value.reason == "candidate does not exists"  # Patroni's own words
    assert patroni_cluster.leader() is patroni_cluster.member("member-1")


def test_no_member_answering_is_unavailable_not_leaderless() -> None:
    driver = PatroniDriver(urls=[f"http://127.0.0.1:{port}" for port in free_ports(2)])
    try:
        with pytest.raises(DriverUnavailable, match="no Patroni member answered GET /cluster"):
            driver.cluster()
    finally:
        driver.close()


def test_the_scheduled_drill_switches_over_through_patroni_losing_no_write(
    runtime: Runtime, patroni_cluster: PatroniCluster
) -> None:
    synchronous(patroni_cluster).close()
    engine = database_engine(runtime)
    assert "dr.drill_stale" in dr_findings(runtime, patroni_cluster)
    with patroni_watch(engine, patroni_cluster, mode="auto") as watch:
        drill = ScheduledDrill(
            engine=engine,
            runner=PatroniDrillRunner(watch),
            database="inventory",
            interval=timedelta(hours=24),
            rto_target=timedelta(minutes=15),
            rpo_target=timedelta(minutes=5),
        )
        entry = drill.run_if_due()
        assert entry is not None
        time.sleep(2)  # the watch reads the cluster after the move, too
    assert (entry.action, entry.decision, entry.outcome) == ("run_drill", "taken", "succeeded")
    assert entry.fencing_token is not None
    assert entry.evidence["primary"] == "member-1"
    assert entry.evidence["standby"] == "member-2"
    assert entry.evidence["drill"]["lost_acknowledged_writes"] == 0
    assert entry.evidence["drill"]["acknowledged_writes"] > 50
    assert patroni_cluster.leader() is patroni_cluster.member("member-2")

    with runtime.database.reader() as session:
        (stored,) = list_drills(session, database="inventory")
        changes = list_audit(session, action=LEADER_CHANGE)
    assert (stored.kind, stored.succeeded, stored.lost_acknowledged_writes) == (
        "switchover",
        True,
        0,
    )
    assert stored.details["decision_id"] == entry.decision_id
    assert stored.details["old_primary_following"] is True
    assert changes == []  # the control plane's own move is its decision, not a surprise

    # The DR check reads the drill, and the replication of the new leader.
    findings = dr_findings(runtime, patroni_cluster)
    assert "dr.drill_stale" not in findings
    assert "dr.replica_missing" not in findings
    print(f"\npatroni switchover drill: {entry.outcome_detail}")

    assert drill.run_if_due() is None  # fresh: nothing due


def test_an_operators_switchover_waits_for_approval_then_patroni_hands_over(
    runtime: Runtime, patroni_cluster: PatroniCluster
) -> None:
    synchronous(patroni_cluster).close()
    engine = database_engine(runtime)  # switchover_database: approval (the shipped policy)
    with patroni_watch(engine, patroni_cluster, mode="auto", start=False) as watch:
        refused = watch.request_switchover(actor="operator:alice", candidate="member-1")
        assert refused.decision == "refused"
        assert refused.reason == "plan: member-1 cannot take over: the leader"

        pending = watch.request_switchover(actor="operator:alice")
        assert (pending.decision, pending.actor) == ("pending", "operator:alice")
        assert pending.evidence["plan"]["candidate"] == "member-2"
        assert patroni_cluster.leader() is patroni_cluster.member("member-1")  # nothing yet

        with runtime.database.writer() as session:
            resolve_pending(
                session,
                decision_id=pending.decision_id,
                approve=True,
                by="bob",
                at=datetime.now(UTC),
            )
        (ran,) = engine.run_approved()
    assert ran.outcome == "succeeded", ran.outcome_detail
    assert "approved by bob" in ran.reason
    change = ran.evidence["execution"]["role_change"]
    assert (change["old_leader"], change["new_leader"]) == ("member-1", "member-2")
    assert change["new_timeline"] == 2
    assert change["old_leader_following"] is True
    assert patroni_cluster.leader() is patroni_cluster.member("member-2")


def test_serve_builds_the_patroni_watch_from_the_settings(runtime: Runtime) -> None:
    settings = runtime.settings.with_values(
        failover={
            "failover_driver": "patroni",
            "patroni_urls": "http://127.0.0.1:8008,http://127.0.0.1:8009",
            "failover_mode": "controlled",
            "drill_interval_hours": 24,
        }
    )
    service = ActionService.from_settings(settings, runtime=runtime)
    assert service.patroni is not None
    assert service.failover is service.patroni
    assert service.patroni.mode == "controlled"
    assert service.patroni.rpo == timedelta(minutes=5)  # the critical tier of the DR policy
    assert list(service.patroni.driver.endpoints) == [
        "http://127.0.0.1:8008",
        "http://127.0.0.1:8009",
    ]
    assert service.drill is not None
    assert isinstance(service.drill.runner, PatroniDrillRunner)
    assert runtime.database_operations is service
    assert set(service.engine.executors) == {
        "failover_database",
        "switchover_database",
        "rejoin_member",
        "run_drill",
    }
    service.patroni.driver.close()


def test_an_operator_runs_a_failover_drill_through_the_control_planes_api(
    tmp_path: Path, patroni_cluster: PatroniCluster
) -> None:
    """What ``controlplane drill failover`` asks of a control plane on Patroni: the drill is
    decided through the gate for the operator, Patroni promotes the chosen candidate under the
    write probe, the drill is stored and the DR view reads the new leader from Patroni."""
    synchronous(patroni_cluster).close()
    settings = settings_for(
        tmp_path,
        failover={"failover_driver": "patroni", "patroni_urls": ",".join(urls(patroni_cluster))},
    )
    runtime = Runtime.from_settings(settings)
    service = ActionService.from_settings(settings, runtime=runtime)  # the engine, not its ticks
    with AppClient(create_app(settings, runtime=runtime)) as client:
        with runtime.database.writer() as session:
            _, token = create_token(session, name="ops", role=Role.OPERATOR, at=datetime.now(UTC))
        headers = {"Authorization": f"Bearer {token}"}
        wait_for(lambda: runtime.leadership.status().is_leader, timeout=10, what="leadership")
        answer = client.post(
            "/api/v1/dr/drills/run", json={"kind": "failover"}, headers=headers, timeout=180
        )
        dr = client.get("/api/v1/dr", headers=headers).json()["databases"][0]
    assert service.patroni is not None
    service.patroni.driver.close()
    assert answer.status_code == 200, answer.text
    entry = answer.json()
    assert (entry["action"], entry["actor"], entry["decision"]) == (
        "run_drill",
        "operator:ops",
        "taken",
    )
    assert entry["outcome"] == "succeeded", entry["outcome_detail"]
    assert entry["evidence"]["kind"] == "failover"
    assert entry["evidence"]["drill"]["lost_acknowledged_writes"] == 0
    assert entry["evidence"]["drill"]["new_primary"] == "member-2"
    assert dr["primary"] == "member-2"
    assert dr["error"] is None
    assert [(r["name"], r["state"]) for r in dr["replicas"]] == [("member-1", "streaming")]
    assert [(d["kind"], d["lost_acknowledged_writes"]) for d in dr["drills"]] == [("failover", 0)]
