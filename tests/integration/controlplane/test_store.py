"""The store on SQLite and on the real PostgreSQL: migrations and repository behaviour."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from controlplane.core.security import Role
from controlplane.evaluation.service import insert_evaluations
from controlplane.store.alerts import (
    IncomingAlert,
    IncomingDelivery,
    list_alerts,
    record_deliveries,
    record_delivery,
)
from controlplane.store.audit import AuditDecision, list_audit, record_decision, record_outcome
from controlplane.store.database import Database, head_revision
from controlplane.store.errors import DuplicateTokenName, FencingTokenStale
from controlplane.store.evaluations import (
    EvaluationRecord,
    histories,
    latest_evaluations,
    record_evaluations,
)
from controlplane.store.findings import list_findings, observe_finding, resolve_finding
from controlplane.store.leases import (
    read_lease,
    release_lease,
    renew_lease,
    require_current_token,
    take_over_lease,
    try_take_lease,
)
from controlplane.store.models import AlertDelivery, ApiToken, Base
from controlplane.store.tokens import authenticate, create_token, revoke_token
from tests.integration.controlplane.conftest import sqlalchemy_url

NOW = datetime(2025, 11, 20, 10, 0, tzinfo=UTC)
TABLES = {
    "slo_evaluations",
    "findings",
    "alerts",
    "alert_deliveries",
    "audit_log",
    "api_tokens",
    "leader_lease",
    "control_flags",
    "drills",
    "restore_validations",
    "backups",
    "alembic_version",
}


def test_migrations_create_exactly_the_models_and_go_down_and_up(database_url: str) -> None:
    db = Database.from_url(sqlalchemy_url(database_url))
    try:
        db.migrate()
        assert db.current_revision() == head_revision()
        assert set(inspect(db.engine).get_table_names()) == TABLES
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        db.migrate()  # idempotent
        db.downgrade("base")
        assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
        assert db.current_revision() is None
        db.migrate()
        assert set(inspect(db.engine).get_table_names()) == TABLES
    finally:
        db.dispose()


def test_replicas_migrating_at_the_same_time_take_turns(database_url: str) -> None:
    """Three processes (replicas starting together) migrate one empty database."""
    script = (
        "import sys; from controlplane.store.database import Database; "
        "Database.from_url(sys.argv[1]).migrate()"
    )
    url = sqlalchemy_url(database_url)
    processes = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    db = Database.from_url(url)
    try:
        assert db.current_revision() == head_revision()
        assert set(inspect(db.engine).get_table_names()) == TABLES
    finally:
        db.dispose()


def _delivery(*, status: str = "firing") -> IncomingDelivery:
    return IncomingDelivery(
        receiver="controlplane",
        status=status,  # type: ignore[arg-type]
        alerts=(
            IncomingAlert(
                fingerprint="f00dfeed",
                status=status,  # type: ignore[arg-type]
                starts_at=NOW,
                labels={"alertname": "ErrorBudgetBurn1h5m", "slo": "api-availability"},
            ),
        ),
    )


def test_the_same_delivery_100_times_concurrently_is_one_alert_and_99_repeats(
    database: Database,
) -> None:
    start = threading.Barrier(20)

    def deliver(attempt: int) -> str:
        if attempt < 20:  # the first twenty start at the same instant
            start.wait()
        with database.writer() as session:
            result = record_delivery(session, delivery=_delivery(), received_at=datetime.now(UTC))
        return result.changes[0].outcome

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(deliver, range(100), timeout=120))
    assert sorted(set(outcomes)) == ["opened", "repeat"]
    assert outcomes.count("opened") == 1
    with database.reader() as session:
        (alert,) = list_alerts(session)
        deliveries = [
            (delivery.changed_count, delivery.repeat_count)
            for delivery in session.scalars(select(AlertDelivery))
        ]
    assert alert.repeat_count == 99
    assert len(deliveries) == 100
    assert sum(changed for changed, _ in deliveries) == 1
    assert sum(repeats for _, repeats in deliveries) == 99


def _alert(fingerprint: str, *, status: str = "firing") -> IncomingAlert:
    return IncomingAlert(
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        starts_at=NOW,
        labels={"alertname": "ErrorBudgetBurn1h5m", "slo": fingerprint},
    )


def _many(*alerts: IncomingAlert) -> IncomingDelivery:
    return IncomingDelivery(receiver="controlplane", status=alerts[0].status, alerts=alerts)


def test_a_burst_of_deliveries_is_stored_as_one_by_one_storage_would(database: Database) -> None:
    received = [NOW + timedelta(seconds=n) for n in range(3)]
    burst = [_many(_alert("b2"), _alert("b1")), _many(_alert("b3")), _many(_alert("b4"))]
    with database.writer() as session:
        results = record_deliveries(session, deliveries=list(zip(burst, received, strict=True)))
    # Every alert opened, in key order within its delivery, deliveries in arrival order.
    assert [[c.fingerprint for c in r.changes] for r in results] == [["b1", "b2"], ["b3"], ["b4"]]
    assert {c.outcome for r in results for c in r.changes} == {"opened"}
    assert [r.delivery_id for r in results] == sorted(r.delivery_id for r in results)
    with database.reader() as session:
        stored = {a.fingerprint: a for a in list_alerts(session)}
        rows = [
            (row.id, row.alert_count, row.changed_count, row.outcomes[0]["fingerprint"])
            for row in session.scalars(select(AlertDelivery).order_by(AlertDelivery.id))
        ]
    assert {c.fingerprint: c.alert_id for r in results for c in r.changes} == {
        fingerprint: alert.id for fingerprint, alert in stored.items()
    }
    assert stored["b3"].first_received_at == received[1]
    assert rows == [
        (r.delivery_id, len(r.changes), len(r.changes), r.changes[0].fingerprint) for r in results
    ]

    # A burst with an alert already stored (and a resolved notice) gets the one-by-one outcomes.
    later = [
        (_many(_alert("b5")), NOW + timedelta(minutes=1)),
        (_many(_alert("b1")), NOW + timedelta(minutes=1)),
        (_many(_alert("b2", status="resolved")), NOW + timedelta(minutes=2)),
    ]
    with database.writer() as session:
        again = record_deliveries(session, deliveries=later)
    assert [r.changes[0].outcome for r in again] == ["opened", "repeat", "closed"]
    assert again[1].changes[0].alert_id == stored["b1"].id


def test_bursts_of_the_same_new_alert_at_once_store_it_once(database: Database) -> None:
    """Two writers store the same new alert at the same instant: a writer whose multi-row
    insert meets the other's row fails whole (what the webhook writer then retries one by one),
    never a second alert."""
    start = threading.Barrier(2)

    def burst(number: int) -> str:
        deliveries = [(_many(_alert("clash"), _alert(f"own-{number}")), datetime.now(UTC))]
        start.wait()
        try:
            with database.writer() as session:
                return record_deliveries(session, deliveries=deliveries)[0].changes[0].outcome
        except IntegrityError:
            with database.writer() as session:
                (delivery, at) = deliveries[0]
                return (
                    record_delivery(session, delivery=delivery, received_at=at).changes[0].outcome
                )

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(burst, range(2), timeout=120))
    assert outcomes == ["opened", "repeat"]
    with database.reader() as session:
        assert sorted(a.fingerprint for a in list_alerts(session)) == ["clash", "own-0", "own-1"]


def test_concurrent_resolved_notices_close_the_alert_once(database: Database) -> None:
    with database.writer() as session:
        record_delivery(session, delivery=_delivery(), received_at=NOW)

    def resolve(_: int) -> str:
        with database.writer() as session:
            result = record_delivery(
                session, delivery=_delivery(status="resolved"), received_at=datetime.now(UTC)
            )
        return result.changes[0].outcome

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(resolve, range(30), timeout=120))
    assert outcomes.count("closed") == 1
    assert outcomes.count("repeat") == 29


def _evaluation(slo: str, at: datetime, **values: object) -> EvaluationRecord:
    fields: dict[str, object] = {
        "slo_id": slo,
        "service": "inventory",
        "at": at,
        "state": "ok",
        "sli": 0.999,
        "objective": 0.99,
        "budget_remaining": 0.9,
        "burn_rates": {"1h": 0.1},
        **values,
    }
    return EvaluationRecord.model_validate(fields)


def test_latest_evaluation_per_slo_with_times_back_in_utc(database: Database) -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    with database.writer() as session:
        record_evaluations(
            session,
            evaluations=[
                _evaluation("a", NOW - timedelta(minutes=1), sli=0.5),
                _evaluation("a", paris, sli=0.6),
                _evaluation("b", NOW - timedelta(minutes=5), state="no_data", sli=None),
            ],
        )
    with database.reader() as session:
        latest = latest_evaluations(session)
    assert [(e.slo_id, e.sli) for e in latest] == [("a", 0.6), ("b", None)]
    assert latest[0].at == NOW
    assert latest[0].at.tzinfo is not None
    assert latest[0].at.utcoffset() == timedelta(0)


def test_latest_evaluation_ties_and_service_filter(database: Database) -> None:
    """Two evaluations at one instant: the later written is the latest; a service filter
    still finds each SLO's newest evaluation of that service."""
    with database.writer() as session:
        record_evaluations(
            session,
            evaluations=[
                _evaluation("a", NOW, sli=0.1),
                _evaluation("a", NOW, sli=0.2),
                _evaluation("b", NOW - timedelta(minutes=2), service="analytics", sli=0.3),
                _evaluation("b", NOW - timedelta(minutes=3), service="analytics", sli=0.4),
            ],
        )
    with database.reader() as session:
        assert [(e.slo_id, e.sli) for e in latest_evaluations(session)] == [
            ("a", 0.2),
            ("b", 0.3),
        ]
        only = latest_evaluations(session, service="analytics")
    assert [(e.slo_id, e.sli) for e in only] == [("b", 0.3)]


def test_every_slos_history_in_one_query_thinned_evenly(database: Database) -> None:
    with database.writer() as session:
        record_evaluations(
            session,
            evaluations=[
                *[
                    _evaluation("a", NOW - timedelta(minutes=minutes), budget_remaining=minutes)
                    for minutes in range(60, -1, -1)
                ],
                _evaluation("b", NOW - timedelta(minutes=1), state="no_data", sli=None),
                _evaluation("c", NOW - timedelta(hours=3)),
            ],
        )
    with database.reader() as session:
        found = histories(session, since=NOW - timedelta(minutes=30), points=4)
        window = histories(
            session,
            since=NOW - timedelta(minutes=30),
            until=NOW - timedelta(minutes=20),
            points=100,
        )
    assert sorted(found) == ["a", "b"]
    # Minutes 30 .. 0 ago (31 points) thinned to 4: first, every tenth, last; oldest first.
    assert [p.budget_remaining for p in found["a"]] == [30, 20, 10, 0]
    assert found["a"][-1].at == NOW
    assert found["a"][-1].at.tzinfo is not None
    (b,) = found["b"]
    assert (b.state, b.sli) == ("no_data", None)
    assert [p.budget_remaining for p in window["a"]] == list(range(30, 19, -1))


def test_no_data_cannot_be_stored_as_a_number(database: Database) -> None:
    with pytest.raises(ValidationError, match="NaN"):
        _evaluation("a", NOW, burn_rates={"1h": float("nan")})
    with pytest.raises(ValidationError, match="finite"):
        _evaluation("a", NOW, sli=float("nan"))
    with pytest.raises(ValidationError):
        _evaluation("a", NOW.replace(tzinfo=None))


def test_naive_times_are_refused_by_the_store(database: Database) -> None:
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(StatementError, match="naive datetime"), database.writer() as session:
        observe_finding(session, kind="k", subject="s", severity="info", at=naive)


def test_one_open_finding_per_kind_and_subject(database: Database) -> None:
    with database.writer() as session:
        first = observe_finding(session, kind="rpo", subject="pg", severity="warning", at=NOW)
        again = observe_finding(
            session, kind="rpo", subject="pg", severity="critical", at=NOW + timedelta(minutes=1)
        )
        assert again.id == first.id
        assert again.occurrences == 2
        assert again.severity == "critical"
        resolve_finding(session, kind="rpo", subject="pg", at=NOW + timedelta(minutes=2))
        reopened = observe_finding(
            session, kind="rpo", subject="pg", severity="warning", at=NOW + timedelta(minutes=3)
        )
        assert reopened.id != first.id
        assert resolve_finding(session, kind="none", subject="pg", at=NOW) is None
    with database.reader() as session:
        assert len(list_findings(session)) == 2
        assert [f.id for f in list_findings(session, open_only=True)] == [reopened.id]


def test_audit_decisions_check_the_fencing_token(database: Database) -> None:
    now = datetime.now(UTC)
    with database.writer() as session:
        token = take_over_lease(session, name="controlplane", holder="replica-a", at=now)
        newer = take_over_lease(session, name="controlplane", holder="replica-b", at=now)
    assert newer == token + 1
    decision = AuditDecision(
        at=NOW,
        actor="replica-a",
        action="failover",
        target="postgresql",
        decision="taken",
        evidence={"replica_lag_seconds": 1.5},
        fencing_token=token,
    )
    with pytest.raises(FencingTokenStale), database.writer() as session:
        record_decision(session, decision=decision, lease_name="controlplane")
    with database.writer() as session:
        stored = record_decision(
            session,
            decision=decision.model_copy(update={"fencing_token": newer, "actor": "replica-b"}),
            lease_name="controlplane",
        )
        record_outcome(
            session, decision_id=stored.decision_id, outcome="succeeded", at=NOW, detail="ok"
        )
    with database.reader() as session:
        (entry,) = list_audit(session)
        lease = read_lease(session, name="controlplane")
    assert entry.actor == "replica-b"
    assert entry.outcome == "succeeded"
    assert entry.evidence == {"replica_lag_seconds": 1.5}
    assert lease is not None
    assert lease.holder == "replica-b"
    assert lease.fencing_token == newer


def test_the_lease_is_taken_once_renewed_by_its_holder_and_lapses_unless_renewed(
    database: Database,
) -> None:
    def take(holder: str, seen: int, *, gone: str | None = None) -> int | None:
        with database.writer() as session:
            grant = try_take_lease(
                session,
                name="lease-test",
                holder=holder,
                at=datetime.now(UTC),
                ttl=0.8,
                seen_token=seen,
                gone_session=gone,
                session=f"session-of-{holder}",
            )
        return None if grant is None else grant.token

    def renew(token: int) -> datetime | None:
        with database.writer() as session:
            return renew_lease(
                session,
                name="lease-test",
                token=token,
                at=datetime.now(UTC),
                ttl=0.8,
                session="session-of-replica-a",
            )

    first = take("replica-a", 0)
    assert first == 1
    assert take("replica-b", 0) is None  # the token moved on: another replica was first
    assert take("replica-b", 1) is None  # held and not expired
    renewed = renew(1)
    assert renewed is not None
    assert renewed > datetime.now(UTC)
    # A follower that saw the holder's session die takes over before the expiry ...
    assert take("replica-b", 1, gone="session-of-someone-else") is None
    assert take("replica-b", 1, gone="session-of-replica-a") == 2
    assert renew(1) is None  # ... and the old holder can no longer renew
    # Not renewed for longer than its time to live, the lease lapses: its token is refused.
    time.sleep(1.0)
    assert renew(2) is None
    with pytest.raises(FencingTokenStale, match="expired"), database.writer() as session:
        require_current_token(session, name="lease-test", token=2)
    assert take("replica-a", 2) == 3
    with database.writer() as session:
        require_current_token(session, name="lease-test", token=3)
        assert release_lease(session, name="lease-test", token=3, at=datetime.now(UTC))
    assert take("replica-b", 3) == 4  # released: free at once
    with database.reader() as session:
        lease = read_lease(session, name="lease-test")
    assert lease is not None
    assert (lease.holder, lease.holder_session) == ("replica-b", "session-of-replica-b")


def test_tokens_store_only_a_hash(database: Database) -> None:
    with database.writer() as session:
        record, secret = create_token(session, name="dash", role=Role.VIEWER, at=NOW)
        with pytest.raises(DuplicateTokenName):
            create_token(session, name="dash", role=Role.ADMIN, at=NOW)
    with database.reader() as session:
        token_hash = session.scalars(select(ApiToken.token_hash)).one()
        row = session.execute(text("SELECT * FROM api_tokens")).one()
        found = authenticate(session, secret=secret)
    assert all(secret not in str(value) for value in row)
    assert token_hash != secret
    assert len(token_hash) == 64
    assert found is not None
    assert (found.id, found.role) == (record.id, Role.VIEWER)
    with database.writer() as session:
        revoke_token(session, name="dash", at=NOW)
        assert authenticate(session, secret=secret) is None
        create_token(session, name="dash", role=Role.ADMIN, at=NOW)  # the name is free again


def _noted(fingerprint: str, *, note: str) -> IncomingAlert:
    return _alert(fingerprint).model_copy(update={"annotations": {"note": note}})


def _wal_autocheckpoint(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_sqlite_checkpoints_run_in_their_own_thread_not_in_commits(tmp_path: Path) -> None:
    path = tmp_path / "controlplane.db"
    database = Database.from_url(f"sqlite:///{path}")
    database.migrate()
    assert _wal_autocheckpoint(database) == 1000  # SQLite's default: a commit checkpoints
    database.start_background_checkpoints(interval=0.05)
    threads = [t for t in threading.enumerate() if t.name == "sqlite-checkpoints"]
    assert len(threads) == 1
    try:
        assert _wal_autocheckpoint(database) == 0
        size_before = path.stat().st_size
        # About 2 MB of alerts: pages reach the database file only when a checkpoint copies
        # them there from the WAL.
        for batch in range(20):
            with database.writer() as session:
                record_deliveries(
                    session,
                    deliveries=[
                        (_many(_noted(f"ck{batch:02d}{n:04d}", note="x" * 1000)), NOW)
                        for n in range(100)
                    ],
                )
        deadline = time.monotonic() + 30
        while path.stat().st_size < size_before + 2_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= size_before + 2_000_000
        with database.reader() as session:
            assert len(list_alerts(session, limit=5000)) == 2000
    finally:
        database.dispose()
    assert not threads[0].is_alive()
    assert _wal_autocheckpoint(database) == 1000  # a disposed database is plain SQLite again
    database.dispose()


def test_background_checkpoints_are_for_sqlite_files_only() -> None:
    database = Database.from_url("sqlite://")
    database.start_background_checkpoints(interval=0.05)
    try:
        assert not [t for t in threading.enumerate() if t.name == "sqlite-checkpoints"]
    finally:
        database.dispose()


def test_a_cycle_inserted_in_bulk_reads_back_as_written_one_by_one(database: Database) -> None:
    """``insert_evaluations`` (multi-row statements on SQLite, executemany on PostgreSQL) stores
    what the ORM path stores: every row, None kept apart from 0, JSON and UTC instants."""
    at = datetime(2025, 11, 20, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    records = [
        EvaluationRecord(
            slo_id=f"slo-{n:04d}",
            service=f"svc-{n % 7}",
            at=at,
            state="no_data" if n % 5 == 0 else "ok",
            sli=None if n % 5 == 0 else 1 - n / 1e6,
            objective=0.999,
            budget_remaining=None if n % 5 == 0 else 0.0,
            burn_rates={"5m": None if n % 3 == 0 else n / 100, "1h": 0.0},
            no_data_reason="no traffic" if n % 5 == 0 else None,
            details={"alerts": [{"name": "page", "firing": n % 2 == 0}], "n": n},
        )
        for n in range(1_203)  # three statements on SQLite, the last one partial
    ]
    with database.writer(writes_first=True) as session:
        insert_evaluations(session, evaluations=records)
    with database.writer() as session:
        record_evaluations(
            session, evaluations=[records[1].model_copy(update={"slo_id": "by-the-orm"})]
        )
    with database.reader() as session:
        stored = {e.slo_id: e for e in latest_evaluations(session)}

    assert len(stored) == len(records) + 1
    for record in [*records, records[1].model_copy(update={"slo_id": "by-the-orm"})]:
        back = EvaluationRecord.model_validate(stored[record.slo_id].model_dump(exclude={"id"}))
        assert back == record
        assert back.at.utcoffset() == timedelta(0)
