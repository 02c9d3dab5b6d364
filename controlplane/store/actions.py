"""Action-engine state: the kill switch, pending approvals, one decision per trigger.

All of it lives in the shared store so that every control-plane replica sees the same switch and
the same pending decisions, and a restart forgets nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controlplane.store.audit import AuditDecision, StoredAuditEntry, record_decision
from controlplane.store.errors import StoreError
from controlplane.store.leases import require_current_token
from controlplane.store.models import AuditEntry, ControlFlag

__all__ = [
    "APPROVED",
    "KILL_SWITCH",
    "RUNNING",
    "AlreadyDecided",
    "DuplicateTrigger",
    "FlagState",
    "claim_execution",
    "decide_once",
    "get_flag",
    "list_interrupted",
    "list_pending",
    "list_unexecuted",
    "merge_evidence",
    "resolve_pending",
    "set_flag",
]

KILL_SWITCH = "actions.kill_switch"
#: The outcome of a decision whose execution has started and not finished.
RUNNING = "running"
#: What an operator's approval adds to a decision's reason.
APPROVED = "approved by"


class DuplicateTrigger(StoreError):
    def __init__(self, trigger_key: str) -> None:
        super().__init__(f"a decision for trigger {trigger_key!r} already exists")
        self.trigger_key = trigger_key


class AlreadyDecided(StoreError):
    def __init__(self, decision_id: str, state: str | None) -> None:
        super().__init__(f"decision {decision_id} is not pending (it is {state or 'unknown'})")
        self.decision_id = decision_id
        self.state = state


class FlagState(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    name: str
    enabled: bool
    changed_at: AwareDatetime | None
    changed_by: str | None
    reason: str | None


def get_flag(session: Session, name: str) -> FlagState:
    row = session.get(ControlFlag, name)
    if row is None:
        return FlagState(name=name, enabled=False, changed_at=None, changed_by=None, reason=None)
    return FlagState.model_validate(row)


def set_flag(
    session: Session, *, name: str, enabled: bool, at: datetime, by: str, reason: str = ""
) -> FlagState:
    row = session.get(ControlFlag, name, with_for_update=True)
    if row is None:
        row = ControlFlag(name=name, enabled=enabled, changed_at=at, changed_by=by, reason=reason)
        session.add(row)
    else:
        row.enabled, row.changed_at, row.changed_by, row.reason = enabled, at, by, reason
    session.flush()
    return FlagState.model_validate(row)


def decide_once(
    session: Session, *, decision: AuditDecision, lease_name: str | None = None
) -> StoredAuditEntry:
    """Record a decision whose ``trigger_key`` has never been decided before.

    Raises :class:`DuplicateTrigger` (and writes nothing) when the trigger was already decided,
    even by another replica at the same moment: the unique index settles the race.
    """
    if decision.trigger_key is None:
        return record_decision(session, decision=decision, lease_name=lease_name)
    try:
        with session.begin_nested():
            return record_decision(session, decision=decision, lease_name=lease_name)
    except IntegrityError as exc:
        raise DuplicateTrigger(decision.trigger_key) from exc


def list_pending(session: Session, *, limit: int = 100) -> list[StoredAuditEntry]:
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.decision == "pending")
        .order_by(AuditEntry.at.asc(), AuditEntry.id.asc())
        .limit(limit)
    )
    return [StoredAuditEntry.model_validate(row) for row in rows]


def resolve_pending(
    session: Session,
    *,
    decision_id: str,
    approve: bool,
    by: str,
    at: datetime,
    comment: str = "",
    who: dict[str, Any] | None = None,
) -> StoredAuditEntry:
    """Approve (→ ``taken``) or deny (→ ``refused``) a pending decision, exactly once.
    ``who`` (the approver as the API saw them) goes into the evidence as ``approved_by`` /
    ``denied_by``.

    The update is conditional on the row still being pending, so two operators clicking at the
    same time cannot both approve it.
    """
    verdict = "approved" if approve else "denied"
    note = f"{verdict} by {by}" + (f": {comment}" if comment else "")
    result = session.execute(
        update(AuditEntry)
        .where(AuditEntry.decision_id == decision_id, AuditEntry.decision == "pending")
        .values(
            decision="taken" if approve else "refused",
            reason=AuditEntry.reason + " | " + note,
            outcome=None if approve else "denied",
            outcome_detail=None if approve else note,
            outcome_at=None if approve else at,
        )
        .execution_options(synchronize_session=False)
    )
    row = session.scalars(
        select(AuditEntry).where(AuditEntry.decision_id == decision_id)
    ).one_or_none()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise AlreadyDecided(decision_id, None if row is None else row.decision)
    assert row is not None
    session.refresh(row)
    if who is not None:
        row.evidence = {**(row.evidence or {}), f"{verdict}_by": who}
        session.flush()
    return StoredAuditEntry.model_validate(row)


def list_unexecuted(session: Session, *, limit: int = 100) -> list[StoredAuditEntry]:
    """Decisions approved by an operator that have not run yet (taken, no outcome, not dry-run)."""
    rows = session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.decision == "taken",
            AuditEntry.outcome.is_(None),
            AuditEntry.dry_run.is_(False),
            AuditEntry.reason.contains(APPROVED),
        )
        .order_by(AuditEntry.at.asc())
        .limit(limit)
    )
    return [StoredAuditEntry.model_validate(row) for row in rows]


def claim_execution(
    session: Session,
    *,
    decision_id: str,
    at: datetime,
    by: str,
    token: int | None = None,
    lease_name: str | None = None,
    resume: bool = False,
) -> bool:
    """Mark a taken decision as running, once: True for the one caller that claims it.

    With ``lease_name`` and ``token`` the claim is fenced: a replica whose token is no longer
    current (or whose lease expired) is refused with
    :class:`~controlplane.store.errors.FencingTokenStale` and claims nothing. ``resume``: also
    claim an execution that a leader of an older token claimed and never finished (it died or
    lost its lease mid-action).
    """
    if lease_name is not None and token is not None:
        require_current_token(session, name=lease_name, token=token)
    claimable: ColumnElement[bool] = AuditEntry.outcome.is_(None)
    if resume and token is not None:
        claimable = or_(
            claimable,
            (AuditEntry.outcome == RUNNING) & (func.coalesce(AuditEntry.executed_token, 0) < token),
        )
    result = session.execute(
        update(AuditEntry)
        .where(AuditEntry.decision_id == decision_id, claimable)
        .values(
            outcome=RUNNING,
            outcome_detail=f"started by {by}" + ("" if token is None else f" (token {token})"),
            outcome_at=at,
            executed_token=token,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def list_interrupted(
    session: Session, *, token: int, actions: Sequence[str], limit: int = 100
) -> list[StoredAuditEntry]:
    """Taken decisions of ``actions`` that a leader of an older token recorded or claimed and
    never finished: decided and not started (operator approvals aside, which wait for
    :func:`list_unexecuted`), or claimed (``running``) without an outcome."""
    not_started = (
        AuditEntry.outcome.is_(None)
        & (func.coalesce(AuditEntry.fencing_token, 0) < token)
        & ~AuditEntry.reason.contains(APPROVED)
    )
    unfinished = (AuditEntry.outcome == RUNNING) & (
        func.coalesce(AuditEntry.executed_token, 0) < token
    )
    rows = session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.decision == "taken",
            AuditEntry.dry_run.is_(False),
            AuditEntry.action.in_(list(actions)),
            or_(not_started, unfinished),
        )
        .order_by(AuditEntry.at.asc(), AuditEntry.id.asc())
        .limit(limit)
    )
    return [StoredAuditEntry.model_validate(row) for row in rows]


def merge_evidence(
    session: Session, *, decision_id: str, extra: dict[str, Any]
) -> StoredAuditEntry:
    """Add keys to a decision's evidence (e.g. what the actuator reported after acting)."""
    row = session.scalars(select(AuditEntry).where(AuditEntry.decision_id == decision_id)).one()
    row.evidence = {**row.evidence, **extra}
    session.flush()
    return StoredAuditEntry.model_validate(row)
