"""``/api/v1/slos``: the current status of every SLO, the recent series of all of them in one
request, and the history of one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict

from controlplane.api.deps import ReaderDep, SettingsDep, SloIdPath
from controlplane.api.errors import invalid_request
from controlplane.core.validation import NO_NUL, IsoDateTime
from controlplane.evaluation.details import EvaluationDetails, SLOStatus
from controlplane.store.evaluations import (
    StoredEvaluation,
    evaluation_history,
    histories,
    latest_evaluations,
    slo_exists,
)

router = APIRouter(prefix="/slos", tags=["slos"])

#: An evaluation older than this many evaluation intervals is reported as stale.
STALE_AFTER_INTERVALS = 3


class SLOEvaluationPublic(BaseModel):
    id: int
    at: AwareDatetime
    state: str
    sli: float | None
    objective: float
    budget_remaining: float | None
    burn_rates: dict[str, float | None]
    no_data_reason: str | None


class SLOHistoryPoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: AwareDatetime
    state: str
    sli: float | None
    budget_remaining: float | None


class SLOHistory(BaseModel):
    """One SLO's evaluations in the asked range, oldest first, thinned evenly to at most
    ``points`` (the newest always kept)."""

    slo_id: str
    points: list[SLOHistoryPoint]


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
        details=EvaluationDetails.model_validate(evaluation.details),
    )


@router.get("", response_model=list[SLOStatus], summary="Current status of every SLO")
def list_slos(
    session: ReaderDep,
    settings: SettingsDep,
    service: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> list[SLOStatus]:
    now = datetime.now(UTC)
    stale_after = STALE_AFTER_INTERVALS * settings.evaluation.evaluation_interval_seconds
    return [
        _status(evaluation, stale_after=stale_after, now=now)
        for evaluation in latest_evaluations(session, service=service)
    ]


# Declared before ``/{slo_id}``: this path is the batch history, not an SLO named "history".
@router.get(
    "/history",
    response_model=list[SLOHistory],
    summary="Recent evaluations of every SLO in one request (sparklines)",
)
def slos_history(
    session: ReaderDep,
    since: IsoDateTime,
    until: IsoDateTime | None = None,
    service: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    points: Annotated[int, Query(ge=1, le=1_000)] = 120,
) -> list[SLOHistory]:
    if until is not None and until < since:
        raise invalid_request(loc=("query", "until"), message="until is before since")
    found = histories(session, since=since, until=until, service=service, points=points)
    return [
        SLOHistory(slo_id=slo_id, points=[SLOHistoryPoint.model_validate(p) for p in series])
        for slo_id, series in found.items()
    ]


@router.get("/{slo_id}", response_model=SLOStatus, summary="Current status of one SLO")
def get_slo(slo_id: SloIdPath, session: ReaderDep, settings: SettingsDep) -> SLOStatus:
    history = evaluation_history(session, slo_id=slo_id, limit=1)
    if not history:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evaluation of SLO {slo_id!r}")
    stale_after = STALE_AFTER_INTERVALS * settings.evaluation.evaluation_interval_seconds
    return _status(history[0], stale_after=stale_after, now=datetime.now(UTC))


@router.get(
    "/{slo_id}/history",
    response_model=list[SLOEvaluationPublic],
    summary="Evaluations of one SLO, newest first",
)
def slo_history(
    slo_id: SloIdPath,
    session: ReaderDep,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
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
