"""Findings follow the checks: opened when seen, resolved when a run no longer sees them, left
alone when a run could not read its inputs (recorded as ``check.input_unavailable`` instead).
On the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.store.database import Database
from controlplane.store.findings import StoredFinding, list_findings
from controlplane.targets.dr import DrillRecord, ReplicaStatus, RestoreValidation
from controlplane.targets.findings import Finding
from controlplane.targets.policy import load_dr_policy
from controlplane.targets.reconcile import (
    INPUT_UNAVAILABLE,
    CheckRun,
    DRCheck,
    DrillHistoryError,
    InputFailure,
    StoreDrillHistory,
    Unknown,
    reconcile,
)
from controlplane.targets.replication import ReplicationReadError

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{tmp_path}/controlplane.db")
    db.migrate()
    yield db
    db.dispose()


def finding(kind: str, subject: str, **evidence: object) -> Finding:
    return Finding(
        kind=kind, subject=subject, severity="warning", summary=kind, evidence=dict(evidence)
    )


def apply(database: Database, run: CheckRun, at: datetime) -> None:
    with database.writer() as session:
        reconcile(session, run=run, at=at)


def findings(database: Database) -> dict[tuple[str, str], StoredFinding]:
    with database.reader() as session:
        return {(f.kind, f.subject): f for f in list_findings(session, limit=1000)}


def test_seen_again_is_refreshed_not_seen_is_resolved(database: Database) -> None:
    drift = finding("capacity.hpa_drift", "service/inventory", min=2)
    ready = finding("capacity.replicas_not_ready", "service/inventory")
    apply(database, CheckRun(check="capacity", findings=(drift, ready)), T0)
    apply(
        database,
        CheckRun(
            check="capacity", findings=(finding("capacity.hpa_drift", "service/inventory", min=1),)
        ),
        T0 + timedelta(minutes=1),
    )
    stored = findings(database)
    kept = stored[("capacity.hpa_drift", "service/inventory")]
    assert (kept.first_seen, kept.last_seen, kept.occurrences) == (
        T0,
        T0 + timedelta(minutes=1),
        2,
    )
    assert kept.evidence == {"min": 1}
    assert kept.resolved_at is None
    gone = stored[("capacity.replicas_not_ready", "service/inventory")]
    assert gone.resolved_at == T0 + timedelta(minutes=1)


def test_a_run_resolves_only_its_own_kinds(database: Database) -> None:
    apply(database, CheckRun(check="dr", findings=(finding("dr.drill_stale", "database/x"),)), T0)
    apply(database, CheckRun(check="capacity", findings=()), T0 + timedelta(minutes=1))
    assert findings(database)[("dr.drill_stale", "database/x")].resolved_at is None


def test_unreadable_input_resolves_nothing_it_covers_and_is_recorded(database: Database) -> None:
    lag = finding("dr.replication_lag", "database/inventory/replica/r1")
    stale = finding("dr.drill_stale", "database/inventory")
    other = finding("dr.replica_missing", "database/other")
    apply(database, CheckRun(check="dr", findings=(lag, stale, other)), T0)

    blind = CheckRun(
        check="dr",
        findings=(),
        unknown=(
            Unknown(
                kinds=frozenset({"dr.replication_lag", "dr.replica_missing"}),
                subject="database/inventory",
            ),
        ),
        failures=(
            InputFailure(input="replication/inventory", source="postgresql", message="refused"),
        ),
    )
    at = T0 + timedelta(minutes=1)
    apply(database, blind, at)
    stored = findings(database)
    assert stored[lag.key].resolved_at is None  # unknown, not fixed
    assert stored[stale.key].resolved_at == at  # the drill history was read: fixed
    assert stored[other.key].resolved_at == at  # another database: not covered
    unreadable = stored[(INPUT_UNAVAILABLE, "check/dr/replication/inventory")]
    assert unreadable.resolved_at is None
    assert unreadable.evidence == {"check": "dr", "source": "postgresql", "error": "refused"}

    later = T0 + timedelta(minutes=2)
    apply(database, CheckRun(check="dr", findings=()), later)
    stored = findings(database)
    assert stored[lag.key].resolved_at == later
    assert stored[(INPUT_UNAVAILABLE, "check/dr/replication/inventory")].resolved_at == later


def test_a_finding_of_another_check_is_refused(database: Database) -> None:
    with pytest.raises(ValueError, match=r"capacity\.hpa_drift"):
        apply(database, CheckRun(check="dr", findings=(finding("capacity.hpa_drift", "s"),)), T0)


# -- the DR check's inputs ----------------------------------------------------------------------

POLICY = load_dr_policy()
STREAMING = [
    ReplicaStatus(
        name="r1",
        client_addr="127.0.0.1",
        state="streaming",
        lag_bytes=0,
        replay_lag=timedelta(seconds=1),
    )
]


class History:
    def __init__(
        self,
        drills: Sequence[DrillRecord] = (),
        restores: Sequence[RestoreValidation] = (),
        error: str | None = None,
    ) -> None:
        self._drills, self._restores, self.error = drills, restores, error

    def drills(self, *, database: str) -> Sequence[DrillRecord]:
        if self.error:
            raise DrillHistoryError(self.error)
        return self._drills

    def restores(self, *, database: str) -> Sequence[RestoreValidation]:
        return self._restores


def test_dr_check_follows_replication_and_history() -> None:
    drill = DrillRecord(
        database="inventory",
        finished_at=T0 - timedelta(days=1),
        measured_rto=timedelta(minutes=20),
        measured_rpo=timedelta(0),
        succeeded=True,
    )
    restore = RestoreValidation(database="inventory", finished_at=T0, succeeded=True)
    check = DRCheck(
        policy=POLICY,
        primary=lambda database: f"dsn-of-{database}",
        history=History([drill], [restore]),
        read=lambda dsn: STREAMING if dsn == "dsn-of-inventory" else [],
    )
    run = check.run(now=T0)
    assert {(f.kind, f.subject) for f in run.findings} == {
        ("dr.drill_rto_exceeded", "database/inventory")  # 20 min against a 15 min RTO
    }
    assert run.unknown == ()
    assert run.failures == ()


def test_dr_check_without_a_primary_or_history_judges_nothing_it_cannot_see() -> None:
    def no_primary(database: str) -> str:
        raise ReplicationReadError("no writable primary: primary is down")

    run = DRCheck(policy=POLICY, primary=no_primary, history=History(error="store down")).run(
        now=T0
    )
    assert run.findings == ()  # neither "replica missing" nor "no drill on record"
    assert {failure.input for failure in run.failures} == {
        "replication/inventory",
        "history/inventory",
    }
    assert all(
        u.covers(kind=kind, subject="database/inventory")
        for u, kind in zip(run.unknown, ("dr.replica_missing", "dr.drill_stale"), strict=True)
    )


def test_drill_history_from_store_rows(database: Database) -> None:
    class Row:
        def __init__(self, **values: object) -> None:
            self.__dict__.update(values)

    seen: list[str] = []

    def list_drills(session: object, *, database: str) -> list[Row]:
        seen.append(database)
        return [
            Row(
                database=database,
                finished_at=T0,
                measured_rto_s=12.5,
                measured_rpo_s=None,
                succeeded=True,
            )
        ]

    def list_restores(session: object, *, database: str) -> list[Row]:
        return [Row(database=database, finished_at=T0, succeeded=False)]

    history = StoreDrillHistory(
        database=database,
        list_drills=list_drills,
        list_restores=list_restores,
    )
    (drill,) = history.drills(database="inventory")
    assert drill.measured_rto == timedelta(seconds=12.5)
    assert drill.measured_rpo is None
    (restore,) = history.restores(database="inventory")
    assert restore.succeeded is False
    assert seen == ["inventory"]
