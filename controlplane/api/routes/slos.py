"""``/api/v1/slos``: the current status of every SLO and the history of one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime, BaseModel

from controlplane.api.deps import ReaderDep, SettingsDep
from controlplane.store.evaluations import (
    StoredEvaluation,
    evaluation_history,
    latest_evaluations,
    slo_exists,
)

router = APIRouter(prefix="/slos", tags=["slos"])

#: An evaluation older than this many evaluation intervals is reported as stale.
STALE_AFTER_INTERVALS = 3


class SLOStatus(BaseModel):
    """The latest evaluation of an SLO. ``sli``, ``budget_remaining`` and burn rates are null
    when there was no data (see ``state`` and ``no_data_reason``), never 0."""

    slo_id: str
    service: str
    state: str
    evaluated_at: AwareDatetime
    stale: bool
    sli: float | None
    objective: float
    budget_remaining: float | None
    burn_rates: dict[str, float | None]
    no_data_reason: str | None
    details: dict[str, Any]


class SLOEvaluationPublic(BaseModel):
    id: int
    at: AwareDatetime
    state: str
    sli: float | None
    objective: float
    budget_remaining: float | None
    burn_rates: dict[str, float | None]
    no_data_reason: str | None


def _status(evaluation: StoredEvaluation, *, stale_after: float, now: datetime) -> SLOStatus:
    return SLOStatus(
        slo_id=evaluation.slo_id,
        service=evaluation.service,
        state=evaluation.state,
        evaluated_at=evaluation.at,
        stale=(now - evaluation.at).total_seconds() > stale_after,
        sli=evaluation.sli,
        objective=evaluation.objective,
        budget_remaining=evaluation.budget_remaining,
        burn_rates=evaluation.burn_rates,
        no_data_reason=evaluation.no_data_reason,
        details=evaluation.details,
    )


@router.get("", response_model=list[SLOStatus], summary="Current status of every SLO")
def list_slos(
    session: ReaderDep,
    settings: SettingsDep,
    service: Annotated[str | None, Query(max_length=200)] = None,
) -> list[SLOStatus]:
    now = datetime.now(UTC)
    stale_after = STALE_AFTER_INTERVALS * settings.evaluation_interval_seconds
    return [
        _status(evaluation, stale_after=stale_after, now=now)
        for evaluation in latest_evaluations(session, service=service)
    ]


@router.get("/{slo_id}", response_model=SLOStatus, summary="Current status of one SLO")
def get_slo(slo_id: str, session: ReaderDep, settings: SettingsDep) -> SLOStatus:
    history = evaluation_history(session, slo_id=slo_id, limit=1)
    if not history:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evaluation of SLO {slo_id!r}")
    stale_after = STALE_AFTER_INTERVALS * settings.evaluation_interval_seconds
    return _status(history[0], stale_after=stale_after, now=datetime.now(UTC))


@router.get(
    "/{slo_id}/history",
    response_model=list[SLOEvaluationPublic],
    summary="Evaluations of one SLO, newest first",
)
def slo_history(
    slo_id: str,
    session: ReaderDep,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[SLOEvaluationPublic]:
    if not slo_exists(session, slo_id=slo_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evaluation of SLO {slo_id!r}")
    return [
        SLOEvaluationPublic.model_validate(evaluation.model_dump())
        for evaluation in evaluation_history(
            session, slo_id=slo_id, since=since, until=until, limit=limit
        )
    ]
