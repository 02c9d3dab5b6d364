"""The audit log: every decision of the action engine, taken or refused, and its outcome.

A decision is written (and committed) before its action runs; the outcome is added afterwards
with :func:`record_outcome`. When a fencing token is given, :func:`record_decision` first checks
that it is still the lease's current token, in the same transaction, so a replica that lost the
leadership cannot record (and therefore cannot run) a decision.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.store.leases import require_current_token
from controlplane.store.models import AuditEntry

__all__ = [
    "AuditDecision",
    "StoredAuditEntry",
    "add_evidence",
    "list_audit",
    "record_decision",
    "record_outcome",
]

Decision = Literal["taken", "refused", "pending"]


class AuditDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision_id: str = Field(default_factory=lambda: uuid.uuid4().hex, max_length=64)
    at: AwareDatetime
    actor: str = Field(min_length=1, max_length=200)
    action: str = Field(min_length=1, max_length=100)
    target: str = Field(min_length=1, max_length=300)
    decision: Decision
    reason: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    fencing_token: int | None = None
    dry_run: bool = False
    #: What caused the decision; unique, so a repeated trigger cannot decide (and act) twice.
    trigger_key: str | None = Field(default=None, max_length=300)


class StoredAuditEntry(AuditDecision):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    outcome: str | None
    outcome_detail: str | None
    outcome_at: AwareDatetime | None
    #: The token of the leader that claimed the execution (None: not started).
    executed_token: int | None = None


def record_decision(
    session: Session, *, decision: AuditDecision, lease_name: str | None = None
) -> StoredAuditEntry:
    """Write a decision. With ``lease_name`` and a fencing token, refuse a stale token
    (:class:`~controlplane.store.errors.FencingTokenStale`)."""
    if lease_name is not None and decision.fencing_token is not None:
        require_current_token(session, name=lease_name, token=decision.fencing_token)
    row = AuditEntry(**decision.model_dump())
    session.add(row)
    session.flush()
    return StoredAuditEntry.model_validate(row)


def record_outcome(
    session: Session,
    *,
    decision_id: str,
    outcome: str,
    at: datetime,
    detail: str | None = None,
    executed_token: int | None = None,
) -> StoredAuditEntry | None:
    """Add the outcome of a decision; None when the decision id is unknown. With
    ``executed_token``, only the execution claimed under that token may record it: None (and
    nothing written) once a later leader has taken the execution over."""
    row = session.scalars(
        select(AuditEntry).where(AuditEntry.decision_id == decision_id).with_for_update()
    ).one_or_none()
    if row is None:
        return None
    if executed_token is not None and row.executed_token != executed_token:
        return None
    row.outcome = outcome
    row.outcome_detail = detail
    row.outcome_at = at
    session.flush()
    return StoredAuditEntry.model_validate(row)


def add_evidence(
    session: Session, *, decision_id: str, values: dict[str, Any]
) -> StoredAuditEntry | None:
    """Merge ``values`` into a decision's evidence (who asked for or approved it); None when the
    decision id is unknown."""
    row = session.scalars(
        select(AuditEntry).where(AuditEntry.decision_id == decision_id).with_for_update()
    ).one_or_none()
    if row is None:
        return None
    row.evidence = {**(row.evidence or {}), **values}
    session.flush()
    return StoredAuditEntry.model_validate(row)


def list_audit(
    session: Session,
    *,
    since: datetime | None = None,
    action: str | None = None,
    decision: str | None = None,
    limit: int = 200,
) -> list[StoredAuditEntry]:
    """Audit entries, newest first."""
    statement = select(AuditEntry)
    if since is not None:
        statement = statement.where(AuditEntry.at >= since)
    if action is not None:
        statement = statement.where(AuditEntry.action == action)
    if decision is not None:
        statement = statement.where(AuditEntry.decision == decision)
    statement = statement.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    return [StoredAuditEntry.model_validate(row) for row in session.scalars(statement)]
