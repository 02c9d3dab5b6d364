"""Findings: what the checks found, open from first sight until resolved.

At most one finding per (kind, subject) is open at a time (a partial unique index); seeing it
again updates ``last_seen``, the severity, summary and evidence, and counts the occurrence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import ColumnElement, select, text, update
from sqlalchemy.orm import Session

from controlplane.store._sql import insert_for
from controlplane.store.models import Finding

__all__ = ["StoredFinding", "list_findings", "observe_finding", "resolve_finding"]


class StoredFinding(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    kind: str
    severity: str
    subject: str
    summary: str
    evidence: dict[str, Any]
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    occurrences: int
    resolved_at: AwareDatetime | None


def _open(kind: str, subject: str) -> ColumnElement[bool]:
    return (Finding.kind == kind) & (Finding.subject == subject) & Finding.resolved_at.is_(None)


def observe_finding(
    session: Session,
    *,
    kind: str,
    subject: str,
    severity: str,
    at: datetime,
    summary: str = "",
    evidence: dict[str, Any] | None = None,
) -> StoredFinding:
    """Open a finding, or refresh the open one with the same kind and subject."""
    values = {
        "kind": kind,
        "subject": subject,
        "severity": severity,
        "summary": summary,
        "evidence": evidence or {},
        "first_seen": at,
        "last_seen": at,
        "occurrences": 1,
    }
    inserted = session.execute(
        insert_for(session, Finding)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["kind", "subject"], index_where=text("resolved_at IS NULL")
        )
        .returning(Finding.id)
    ).scalar_one_or_none()
    if inserted is None:
        session.execute(
            update(Finding)
            .where(_open(kind, subject))
            .values(
                severity=severity,
                summary=summary,
                evidence=evidence or {},
                last_seen=at,
                occurrences=Finding.occurrences + 1,
            )
        )
    finding = session.scalars(
        select(Finding).where(_open(kind, subject)).execution_options(populate_existing=True)
    ).one()
    return StoredFinding.model_validate(finding)


def resolve_finding(
    session: Session, *, kind: str, subject: str, at: datetime
) -> StoredFinding | None:
    """Close the open finding of (kind, subject); None when none was open."""
    finding = session.scalars(select(Finding).where(_open(kind, subject))).one_or_none()
    if finding is None:
        return None
    finding.resolved_at = at
    session.flush()
    return StoredFinding.model_validate(finding)


def list_findings(
    session: Session,
    *,
    open_only: bool = False,
    kind: str | None = None,
    limit: int = 200,
) -> list[StoredFinding]:
    """Findings, most recently seen first."""
    statement = select(Finding)
    if open_only:
        statement = statement.where(Finding.resolved_at.is_(None))
    if kind is not None:
        statement = statement.where(Finding.kind == kind)
    statement = statement.order_by(Finding.last_seen.desc(), Finding.id.desc()).limit(limit)
    return [StoredFinding.model_validate(row) for row in session.scalars(statement)]
