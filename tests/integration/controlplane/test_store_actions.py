"""Action-engine state in the store, on SQLite and PostgreSQL: kill switch, one decision per
trigger (also under concurrency), approvals decided exactly once, drills."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.store.actions import (
    KILL_SWITCH,
    AlreadyDecided,
    DuplicateTrigger,
    claim_execution,
    decide_once,
    get_flag,
    list_interrupted,
    list_pending,
    resolve_pending,
    set_flag,
)
from controlplane.store.audit import AuditDecision, list_audit, record_outcome
from controlplane.store.database import Database
from controlplane.store.drills import (
    NewDrill,
    list_drills,
    list_restore_validations,
    record_drill,
    record_restore_validation,
)
from controlplane.store.errors import FencingTokenStale
from controlplane.store.leases import take_over_lease

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def decision(trigger: str | None, *, kind: str = "taken") -> AuditDecision:
    return AuditDecision(
        at=NOW,
        actor="engine",
        action="scale_out",
        target="service/inventory",
        decision=kind,  # type: ignore[arg-type]
        reason="latency burn",
        trigger_key=trigger,
    )


def test_kill_switch_defaults_off_and_is_shared(database: Database) -> None:
    with database.reader() as session:
        assert get_flag(session, KILL_SWITCH).enabled is False
    with database.writer() as session:
        set_flag(session, name=KILL_SWITCH, enabled=True, at=NOW, by="alice", reason="incident")
    with database.reader() as session:
        state = get_flag(session, KILL_SWITCH)
    assert (state.enabled, state.changed_by, state.reason) == (True, "alice", "incident")


def test_a_trigger_decides_once_and_a_duplicate_writes_nothing(database: Database) -> None:
    with database.writer() as session:
        decide_once(session, decision=decision("alert:abc:2026-11-21T11:59:00Z:scale_out"))
    with pytest.raises(DuplicateTrigger), database.writer() as session:
        decide_once(session, decision=decision("alert:abc:2026-11-21T11:59:00Z:scale_out"))
    with database.reader() as session:
        assert len(list_audit(session)) == 1


def test_concurrent_deciders_on_one_trigger_record_exactly_one_decision(
    database: Database,
) -> None:
    def attempt(_: int) -> bool:
        try:
            with database.writer() as session:
                decide_once(session, decision=decision("alert:race:1:scale_out"))
        except DuplicateTrigger:
            return False
        return True

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(attempt, range(20)))
    assert results.count(True) == 1
    with database.reader() as session:
        assert len(list_audit(session)) == 1


def test_pending_decisions_are_approved_or_denied_exactly_once(database: Database) -> None:
    with database.writer() as session:
        first = decide_once(session, decision=decision("finding:1:scale_out", kind="pending"))
        second = decide_once(session, decision=decision("finding:2:scale_out", kind="pending"))
    with database.reader() as session:
        assert [p.decision_id for p in list_pending(session)] == [
            first.decision_id,
            second.decision_id,
        ]
    with database.writer() as session:
        approved = resolve_pending(
            session, decision_id=first.decision_id, approve=True, by="alice", at=NOW
        )
    assert approved.decision == "taken"
    assert "approved by alice" in approved.reason
    with pytest.raises(AlreadyDecided), database.writer() as session:
        resolve_pending(session, decision_id=first.decision_id, approve=False, by="bob", at=NOW)
    with database.writer() as session:
        denied = resolve_pending(
            session, decision_id=second.decision_id, approve=False, by="bob", at=NOW, comment="no"
        )
    assert (denied.decision, denied.outcome) == ("refused", "denied")
    with database.reader() as session:
        assert list_pending(session) == []


def test_an_execution_is_claimed_once_under_a_current_token_and_resumed_by_a_later_one(
    database: Database,
) -> None:
    now = datetime.now(UTC)

    def claim(decision_id: str, *, token: int, resume: bool = False) -> bool:
        with database.writer() as session:
            return claim_execution(
                session,
                decision_id=decision_id,
                at=now,
                by=f"holder of {token}",
                token=token,
                lease_name="controlplane",
                resume=resume,
            )

    with database.writer() as session:
        old = take_over_lease(session, name="controlplane", holder="replica-a", at=now, ttl=60)
        started, untouched, finished = (
            decide_once(
                session, decision=decision(f"t:{name}").model_copy(update={"fencing_token": old})
            )
            for name in ("started", "untouched", "finished")
        )
        refused = decide_once(session, decision=decision("t:refused", kind="refused"))
    assert claim(started.decision_id, token=old)
    assert not claim(started.decision_id, token=old)  # claimed once
    assert claim(finished.decision_id, token=old)
    with database.writer() as session:
        record_outcome(session, decision_id=finished.decision_id, outcome="succeeded", at=now)
    # Replica a dies mid-way; b takes over with a new token.
    with database.writer() as session:
        new = take_over_lease(session, name="controlplane", holder="replica-b", at=now, ttl=60)
    with pytest.raises(FencingTokenStale):
        claim(untouched.decision_id, token=old)
    with database.reader() as session:
        assert list_interrupted(session, token=old, actions=["scale_out"]) == []
        interrupted = list_interrupted(session, token=new, actions=["scale_out"])
    assert [e.decision_id for e in interrupted] == [started.decision_id, untouched.decision_id]
    assert refused.decision_id not in [e.decision_id for e in interrupted]
    for entry in interrupted:
        assert claim(entry.decision_id, token=new, resume=True)
    with database.reader() as session:
        assert list_interrupted(session, token=new, actions=["scale_out"]) == []
        claimed = {e.decision_id: e.executed_token for e in list_audit(session)}
    assert claimed[started.decision_id] == new
    assert claimed[untouched.decision_id] == new
    assert claimed[finished.decision_id] == old


def test_drills_and_restore_validations_newest_first(database: Database) -> None:
    with database.writer() as session:
        for days, rto in ((10, 7.5), (2, 5.0)):
            record_drill(
                session,
                drill=NewDrill(
                    database="inventory",
                    kind="switchover",
                    started_at=NOW - timedelta(days=days, seconds=30),
                    finished_at=NOW - timedelta(days=days),
                    succeeded=True,
                    measured_rto_s=rto,
                    measured_rpo_s=0.0,
                    lost_acknowledged_writes=0,
                    acknowledged_writes=500,
                ),
            )
        record_restore_validation(
            session, database="inventory", finished_at=NOW - timedelta(days=3), succeeded=True
        )
    with database.reader() as session:
        drills = list_drills(session, database="inventory")
        restores = list_restore_validations(session, database="inventory")
    assert [d.measured_rto_s for d in drills] == [5.0, 7.5]
    assert restores[0].succeeded
    with pytest.raises(ValueError, match="kind"):
        NewDrill(
            database="inventory",
            kind="guess",
            started_at=NOW,
            finished_at=NOW,
            succeeded=True,
            measured_rto_s=1,
        )
