"""``/api/v1/findings``: what the checks found."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from controlplane.api.deps import ReaderDep
from controlplane.core.validation import NO_NUL
from controlplane.store.findings import StoredFinding, list_findings

router = APIRouter(prefix="/findings", tags=["findings"])


@router.get("", response_model=list[StoredFinding], summary="Findings, most recently seen first")
def findings(
    session: ReaderDep,
    open_only: Annotated[bool, Query(alias="open", description="Only unresolved ones")] = False,
    kind: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[StoredFinding]:
    return list_findings(session, open_only=open_only, kind=kind, limit=limit)
