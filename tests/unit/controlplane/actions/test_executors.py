"""Executors of the actions the engine does not run itself (database actions, drills): run when
the gate lets the decision act or once an operator approves it, their outcome and evidence
written into the audit entry; a plan's refusal is audited and runs nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controlplane.actions.engine import ActionEngine, Execution
from controlplane.failover.driver import DriverRefused
from controlplane.runtime import Runtime
from controlplane.store.actions import resolve_pending
from controlplane.store.audit import StoredAuditEntry
from tests.support.runtime import database_engine, leading_runtime

pytestmark = pytest.mark.unit


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with leading_runtime(tmp_path) as started:
        yield started


class Recorder:
    def __init__(self, *, fail: bool = False) -> None:
        self.ran: list[str] = []
        self.fail = fail

    def __call__(self, entry: StoredAuditEntry) -> Execution:
        self.ran.append(entry.decision_id)
        if self.fail:
            raise DriverRefused(
                operation="POST /failover", status=412, reason="candidate does not exists"
            )
        return Execution(
            outcome="succeeded", detail="promoted member-2", evidence={"execution": {"n": 1}}
        )


def failover(engine: ActionEngine, key: str, **options: object) -> StoredAuditEntry | None:
    return engine.decide(
        "failover_database",
        "inventory",
        trigger_key=key,
        trigger="no leader",
        evidence={"service": "inventory"},
        **options,  # type: ignore[arg-type]
    )


def test_a_taken_decision_runs_its_executor_and_keeps_what_it_did(runtime: Runtime) -> None:
    engine = database_engine(runtime)
    executor = Recorder()
    engine.register_executor("failover_database", executor)
    entry = failover(engine, "k1", actor="operator:alice")
    assert entry is not None
    assert executor.ran == [entry.decision_id]
    assert (entry.decision, entry.outcome, entry.outcome_detail) == (
        "taken",
        "succeeded",
        "promoted member-2",
    )
    assert entry.evidence["execution"] == {"n": 1}
    assert entry.actor == "operator:alice"
    assert entry.target == "database/inventory"


def test_an_executor_that_fails_is_a_failed_outcome_with_its_reason(runtime: Runtime) -> None:
    engine = database_engine(runtime)
    engine.register_executor("failover_database", Recorder(fail=True))
    entry = failover(engine, "k1")
    assert entry is not None
    assert entry.outcome == "failed"
    assert entry.outcome_detail == (
        "DriverRefused: POST /failover refused (412): candidate does not exists"
    )


def test_a_plans_refusal_is_audited_and_runs_nothing(runtime: Runtime) -> None:
    engine = database_engine(runtime)
    executor = Recorder()
    engine.register_executor("failover_database", executor)
    entry = failover(engine, "k1", refusal="member-2: lag 400.0 s exceeds the RPO budget")
    assert entry is not None
    assert (entry.decision, entry.reason) == (
        "refused",
        "plan: member-2: lag 400.0 s exceeds the RPO budget",
    )
    assert executor.ran == []


def test_an_approved_decision_runs_its_executor_at_the_next_tick(runtime: Runtime) -> None:
    engine = database_engine(runtime, modes={"failover_database": "approval"})
    executor = Recorder()
    engine.register_executor("failover_database", executor)
    pending = failover(engine, "k1")
    assert pending is not None
    assert pending.decision == "pending"
    assert engine.run_approved() == []  # nobody approved yet
    with runtime.database.writer() as session:
        resolve_pending(
            session, decision_id=pending.decision_id, approve=True, by="alice", at=datetime.now(UTC)
        )
    (ran,) = engine.run_approved()
    assert executor.ran == [pending.decision_id]
    assert ran.outcome == "succeeded"
    assert ran.reason.endswith("approved by alice")


def test_without_an_executor_the_action_is_only_handed_off(runtime: Runtime) -> None:
    entry = failover(database_engine(runtime), "k1")
    assert entry is not None
    assert entry.outcome == "handed-off"
