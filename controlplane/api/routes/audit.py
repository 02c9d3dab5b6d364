"""``/api/v1/audit``: decisions of the action engine, taken or refused, with their outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from controlplane.api.deps import ReaderDep
from controlplane.core.validation import NO_NUL, IsoDateTime
from controlplane.store.audit import StoredAuditEntry, list_audit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[StoredAuditEntry], summary="Audit log, newest first")
def audit(
    session: ReaderDep,
    since: IsoDateTime | None = None,
    action: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[StoredAuditEntry]:
    return list_audit(session, since=since, action=action, limit=limit)
