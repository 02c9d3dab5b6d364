"""The scheduled DR check against a real primary + streaming replica, with its findings in the
store: a stopped replica, lag forced above the RPO, drills and restore validations recorded in
the store — each raised, then resolved once fixed; an unreachable primary resolves nothing.

The primary is found among the nodes the way the control plane finds it after a failover
(the first writable node); the policy is the shipped one with a 2 s RPO for the critical tier.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from controlplane.core.config import ControlPlaneSettings
from controlplane.evaluation.evaluator import SLOEvaluator
from controlplane.evaluation.metrics import ControlPlaneMetrics
from controlplane.evaluation.service import EvaluationService
from controlplane.failover.nodes import Node
from controlplane.runtime import Runtime
from controlplane.sources.prometheus import PrometheusSource
from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from controlplane.store.drills import (
    NewDrill,
    list_drills,
    list_restore_validations,
    record_drill,
    record_restore_validation,
)
from controlplane.store.findings import StoredFinding, list_findings
from controlplane.targets.policy import DRPolicy, load_dr_policy
from controlplane.targets.reconcile import (
    INPUT_UNAVAILABLE,
    DRCheck,
    NodeTopology,
    StoreDrillHistory,
)
from tests.integration.controlplane.evaluation.support import eventually
from tests.support.backends import TEST_PG_CONF, BackendPool, launch

pytestmark = pytest.mark.integration

SLOT = "dr_eval"
REPLICA = f"database/inventory/replica/{SLOT}"


@pytest.fixture(scope="module")
def pair(backend_pool: BackendPool) -> Iterator[tuple[PostgresPrimary, PostgresReplica]]:
    primary = launch(backend_pool, PostgresPrimary, extra_conf=TEST_PG_CONF)
    replica = launch(backend_pool, PostgresReplica, primary=primary, slot=SLOT)
    with psycopg.connect(primary.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ticks (at timestamptz DEFAULT now())")
    yield primary, replica
    backend_pool.stop(replica)
    backend_pool.stop(primary)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> DRPolicy:
    text = Path("controlplane/policies/dr.yaml").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("policy") / "dr.yaml"
    path.write_text(text.replace("critical: {rto: 15m, rpo: 5m}", "critical: {rto: 15m, rpo: 2s}"))
    return load_dr_policy(path)


def nodes(primary: PostgresPrimary, replica: PostgresReplica) -> list[Node]:
    # The replica first: the check must skip a standby and find the writable node.
    return [
        Node(name="replica", host="127.0.0.1", port=replica.port),
        Node(name="primary", host="127.0.0.1", port=primary.port),
    ]


@pytest.fixture
def service(
    tmp_path: Path, pair: tuple[PostgresPrimary, PostgresReplica], policy: DRPolicy
) -> Iterator[EvaluationService]:
    settings = ControlPlaneSettings.model_validate(
        {"store": {"data_dir": tmp_path}, "leader": {"leader_acquire_interval_seconds": 0.2}}
    )
    runtime = Runtime.from_settings(settings)
    runtime.start()
    check = DRCheck(
        policy=policy,
        primary=NodeTopology(nodes=nodes(*pair), database="inventory"),
        history=StoreDrillHistory(
            database=runtime.database,
            list_drills=list_drills,
            list_restores=list_restore_validations,
        ),
    )
    evaluation = EvaluationService(
        runtime=runtime,
        evaluator=SLOEvaluator(
            slos=(), metrics=PrometheusSource.from_settings(settings), logs=None
        ),
        metrics=ControlPlaneMetrics(process=False),
        checks=[check],
    )
    eventually(lambda: runtime.leadership.status().is_leader, timeout=10)
    try:
        yield evaluation
    finally:
        runtime.stop()


def open_findings(service: EvaluationService) -> dict[str, StoredFinding]:
    """Run the checks once; the open findings afterwards, by "kind subject"."""
    service.check_now()
    with service.runtime.database.reader() as session:
        found = list_findings(session, open_only=True, limit=1000)
    return {f"{f.kind} {f.subject}": f for f in found}


def test_history_in_the_store_resolves_stale_drills_and_a_slow_drill_exceeds_the_rto(
    service: EvaluationService,
) -> None:
    found = open_findings(service)
    assert set(found) == {
        "dr.drill_stale database/inventory",
        "dr.restore_validation_stale database/inventory",
    }
    now = datetime.now(UTC)
    with service.runtime.database.writer() as session:
        record_drill(
            session,
            drill=NewDrill(
                database="inventory",
                kind="switchover",
                started_at=now - timedelta(seconds=30),
                finished_at=now - timedelta(seconds=21),
                succeeded=True,
                measured_rto_s=9.0,
                measured_rpo_s=0.0,
            ),
        )
        record_restore_validation(session, database="inventory", finished_at=now, succeeded=True)
    assert open_findings(service) == {}
    with service.runtime.database.writer() as session:
        record_drill(
            session,
            drill=NewDrill(
                database="inventory",
                kind="failover",
                started_at=now,
                finished_at=now + timedelta(seconds=1),
                succeeded=True,
                measured_rto_s=20 * 60.0,
            ),
        )
    slow = open_findings(service)["dr.drill_rto_exceeded database/inventory"]
    assert slow.evidence["measured_rto_s"] == 1200
    assert slow.evidence["rto_s"] == 900
    with service.runtime.database.reader() as session:
        (stale,) = list_findings(session, kind="dr.drill_stale")
    assert stale.resolved_at is not None


def test_a_stopped_replica_is_missing_until_it_streams_again(
    service: EvaluationService, pair: tuple[PostgresPrimary, PostgresReplica]
) -> None:
    _, replica = pair
    eventually(lambda: not any(k.startswith("dr.replica") for k in open_findings(service)))
    replica.stop()
    try:
        missing = open_findings(service)["dr.replica_missing database/inventory"]
        assert missing.severity == "critical"
        assert missing.evidence["streaming"] == []
    finally:
        replica.start()
    eventually(lambda: "dr.replica_missing database/inventory" not in open_findings(service))
    with service.runtime.database.reader() as session:
        (resolved,) = list_findings(session, kind="dr.replica_missing")
    assert resolved.resolved_at is not None


def test_lag_forced_above_the_rpo_is_found_and_resolved_when_replay_resumes(
    service: EvaluationService, pair: tuple[PostgresPrimary, PostgresReplica]
) -> None:
    primary, replica = pair
    eventually(lambda: not any(k.startswith("dr.replica") for k in open_findings(service)))
    with psycopg.connect(replica.dsn(), autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            with psycopg.connect(primary.dsn(), autocommit=True) as conn:

                def lagging() -> StoredFinding | None:
                    conn.execute("INSERT INTO ticks DEFAULT VALUES")
                    time.sleep(0.2)
                    return open_findings(service).get(f"dr.replication_lag {REPLICA}")

                lag = eventually(lagging, timeout=30)
            assert lag.evidence["replay_lag_s"] > 2
            assert lag.evidence["lag_bytes"] > 0
            assert lag.evidence["rpo_s"] == 2
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    eventually(lambda: f"dr.replication_lag {REPLICA}" not in open_findings(service))


def test_an_unreachable_primary_resolves_nothing_and_is_recorded(
    service: EvaluationService, pair: tuple[PostgresPrimary, PostgresReplica], policy: DRPolicy
) -> None:
    _, replica = pair
    replica.stop()
    try:
        assert "dr.replica_missing database/inventory" in open_findings(service)
        check = service.checks[0]
        assert isinstance(check, DRCheck)
        check.primary = NodeTopology(
            nodes=[Node(name="gone", host="127.0.0.1", port=1)], database="inventory", timeout=1
        )
        blind = open_findings(service)
        assert "dr.replica_missing database/inventory" in blind  # not resolved: unknown
        unreadable = blind[f"{INPUT_UNAVAILABLE} check/dr/replication/inventory"]
        assert "no writable primary" in unreadable.evidence["error"]
        check.primary = NodeTopology(nodes=nodes(*pair), database="inventory")
    finally:
        replica.start()
    eventually(
        lambda: (
            not {
                "dr.replica_missing database/inventory",
                f"{INPUT_UNAVAILABLE} check/dr/replication/inventory",
            }
            & set(open_findings(service))
        )
    )
