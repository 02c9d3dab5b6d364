from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.targets.dr import DrillRecord, ReplicaStatus, RestoreValidation, check_dr
from controlplane.targets.policy import load_dr_policy

pytestmark = pytest.mark.unit

POLICY = load_dr_policy()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FRESH_DRILL = DrillRecord(
    database="inventory",
    finished_at=NOW - timedelta(days=3),
    measured_rto=timedelta(seconds=9),
    measured_rpo=timedelta(0),
    succeeded=True,
)
FRESH_RESTORE = RestoreValidation(
    database="inventory", finished_at=NOW - timedelta(days=10), succeeded=True
)


def replica(
    *, lag: timedelta | None, lag_bytes: int | None = 1024, state: str = "streaming"
) -> ReplicaStatus:
    return ReplicaStatus(
        name="replica_1", client_addr="127.0.0.1", state=state, lag_bytes=lag_bytes, replay_lag=lag
    )


def kinds(**kwargs: object) -> set[str]:
    options: dict[str, object] = {
        "replicas": {"inventory": [replica(lag=timedelta(seconds=1))]},
        "drills": [FRESH_DRILL],
        "restores": [FRESH_RESTORE],
    }
    options.update(kwargs)
    return {f.kind for f in check_dr(POLICY, now=NOW, **options)}  # type: ignore[arg-type]


def test_healthy_replication_recent_drill_and_restore_raise_nothing() -> None:
    assert kinds() == set()


def test_lag_above_the_critical_rpo() -> None:
    findings = check_dr(
        POLICY,
        now=NOW,
        replicas={"inventory": [replica(lag=timedelta(minutes=6), lag_bytes=10_000_000)]},
        drills=[FRESH_DRILL],
        restores=[FRESH_RESTORE],
    )
    (finding,) = findings
    assert finding.kind == "dr.replication_lag"
    assert finding.subject == "database/inventory/replica/replica_1"
    assert finding.evidence["lag_bytes"] == 10_000_000
    assert finding.evidence["rpo_s"] == 300
    assert kinds(replicas={"inventory": [replica(lag=timedelta(minutes=4, seconds=59))]}) == set()


def test_idle_caught_up_replica_with_null_lag_is_fine_but_unknown_lag_is_not() -> None:
    assert kinds(replicas={"inventory": [replica(lag=None, lag_bytes=0)]}) == set()
    assert kinds(replicas={"inventory": [replica(lag=None, lag_bytes=None)]}) == {
        "dr.replication_lag"
    }


def test_missing_replica() -> None:
    assert kinds(replicas={"inventory": []}) == {"dr.replica_missing"}
    catching_up = replica(lag=None, state="catchup")
    assert kinds(replicas={"inventory": [catching_up]}) == {"dr.replica_missing"}


def test_unreadable_primary_is_not_reported_as_missing_replicas() -> None:
    assert kinds(replicas={}) == set()


def test_stale_or_missing_restore_validation_and_drill() -> None:
    old_restore = RestoreValidation(
        database="inventory", finished_at=NOW - timedelta(days=32), succeeded=True
    )
    failed_restore = RestoreValidation(
        database="inventory", finished_at=NOW - timedelta(days=1), succeeded=False
    )
    assert kinds(restores=[old_restore]) == {"dr.restore_validation_stale"}
    assert kinds(restores=[old_restore, failed_restore]) == {"dr.restore_validation_stale"}
    assert kinds(restores=[]) == {"dr.restore_validation_stale"}
    old_drill = DrillRecord(
        database="inventory",
        finished_at=NOW - timedelta(days=100),
        measured_rto=timedelta(seconds=9),
        measured_rpo=None,
        succeeded=True,
    )
    assert kinds(drills=[old_drill]) == {"dr.drill_stale"}
    assert kinds(drills=[]) == {"dr.drill_stale"}


def test_last_drill_slower_than_the_rto_or_losing_more_than_the_rpo() -> None:
    slow = DrillRecord(
        database="inventory",
        finished_at=NOW - timedelta(days=1),
        measured_rto=timedelta(minutes=16),
        measured_rpo=timedelta(minutes=6),
        succeeded=True,
    )
    assert kinds(drills=[FRESH_DRILL, slow]) == {"dr.drill_rto_exceeded", "dr.drill_rpo_exceeded"}
    # The most recent drill is what counts.
    assert (
        kinds(drills=[slow, FRESH_DRILL.__class__(**{**FRESH_DRILL.__dict__, "finished_at": NOW})])
        == set()
    )
