"""``/api/v1/slos``: the current status of every SLO, the recent series of all of them in one
request, and the history of one.

``GET /slos`` keeps the newest evaluation of every SLO between requests (:class:`LatestStatuses`)
and reads from the store only what was written since (by evaluation id); its answer carries an
``ETag``, and a client that sends it back in ``If-None-Match`` gets ``304 Not Modified`` while
no SLO has a new evaluation and none turned stale: with thousands of SLOs an unchanged list is
neither read, built nor sent again.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy.orm import Session

from controlplane.api.deps import ReaderDep, SettingsDep, SloIdPath
from controlplane.api.errors import invalid_request
from controlplane.core.validation import NO_NUL, IsoDateTime
from controlplane.evaluation.details import EvaluationDetails, SLOStatus
from controlplane.store.evaluations import (
    StoredEvaluation,
    evaluation_history,
    evaluations_version,
    histories,
    latest_evaluations,
    slo_exists,
    written_after,
)

router = APIRouter(prefix="/slos", tags=["slos"])

#: An evaluation older than this many evaluation intervals is reported as stale.
STALE_AFTER_INTERVALS = 3
#: At most this many ``slo`` values in one batch history request (the query string's size).
MAX_HISTORY_SLOS = 200


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


def _status(evaluation: StoredEvaluation, *, stale: bool) -> SLOStatus:
    return SLOStatus(
        slo_id=evaluation.slo_id,
        service=evaluation.service,
        state=evaluation.state,
        evaluated_at=evaluation.at,
        stale=stale,
        sli=evaluation.sli,
        objective=evaluation.objective,
        budget_remaining=evaluation.budget_remaining,
        burn_rates=evaluation.burn_rates,
        no_data_reason=evaluation.no_data_reason,
        details=EvaluationDetails.model_validate(evaluation.details),
    )


_STATUSES = TypeAdapter(list[SLOStatus])


class LatestStatuses:
    """The newest evaluation of every SLO and its status, kept between requests (thread-safe).

    Each request asks the store for (newest id, count) first: unchanged, nothing else is read;
    only added (the count grew by the evaluations above the kept newest id), only the SLOs
    with a new evaluation are read; anything else (retention deleted rows, a transaction
    committed an older id late) reads every SLO again. A status is built again only when its
    evaluation or its stale mark changes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple[int | None, int] | None = None
        self._evaluations: dict[str, StoredEvaluation] = {}
        self._statuses: dict[str, tuple[int, bool, SLOStatus]] = {}
        #: The last answer sent whole: (etag, body).
        self._body: tuple[str, bytes] | None = None

    def evaluations(
        self, session: Session
    ) -> tuple[tuple[int | None, int], list[StoredEvaluation]]:
        version = evaluations_version(session)
        with self._lock:
            kept, known = self._version, self._evaluations
        if version != kept:
            newest, count = version
            if kept is not None and kept[0] is not None and newest is not None:
                added = written_after(session, after=kept[0])
                if count == kept[1] + added:
                    changed = latest_evaluations(session, changed_after=kept[0])
                    known = {**known, **{item.slo_id: item for item in changed}}
                else:
                    known = {item.slo_id: item for item in latest_evaluations(session)}
            else:
                known = {item.slo_id: item for item in latest_evaluations(session)}
            with self._lock:
                self._version, self._evaluations = version, known
        return version, [known[slo_id] for slo_id in sorted(known)]

    def status(self, evaluation: StoredEvaluation, *, stale: bool) -> SLOStatus:
        with self._lock:
            found = self._statuses.get(evaluation.slo_id)
        if found is not None and found[0] == evaluation.id and found[1] == stale:
            return found[2]
        built = _status(evaluation, stale=stale)
        with self._lock:
            self._statuses[evaluation.slo_id] = (evaluation.id, stale, built)
        return built

    def body(self, etag: str, statuses: list[SLOStatus]) -> bytes:
        with self._lock:
            if self._body is not None and self._body[0] == etag:
                return self._body[1]
        body = _STATUSES.dump_json(statuses)
        with self._lock:
            self._body = (etag, body)
        return body


def _latest(request: Request) -> LatestStatuses:
    found: LatestStatuses | None = getattr(request.app.state, "latest_statuses", None)
    if found is None:
        found = request.app.state.latest_statuses = LatestStatuses()
    return found


@router.get(
    "",
    response_model=list[SLOStatus],
    summary="Current status of every SLO",
    responses={304: {"description": "Unchanged since the ETag sent in If-None-Match"}},
)
def list_slos(
    request: Request,
    session: ReaderDep,
    settings: SettingsDep,
    service: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    now = datetime.now(UTC)
    stale_after = STALE_AFTER_INTERVALS * settings.evaluation.evaluation_interval_seconds
    latest = _latest(request)
    version, evaluations = latest.evaluations(session)
    if service is not None:
        evaluations = [item for item in evaluations if item.service == service]
    stale = [(now - item.at).total_seconds() > stale_after for item in evaluations]
    marks = "".join("1" if flag else "0" for flag in stale)
    fingerprint = f"{version}|{service}|{marks}".encode()
    etag = '"' + hashlib.blake2b(fingerprint, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match is not None and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    statuses = [
        latest.status(item, stale=flag) for item, flag in zip(evaluations, stale, strict=True)
    ]
    return Response(
        content=latest.body(etag, statuses), media_type="application/json", headers=headers
    )


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
    slo: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]] | None,
        Query(description=f"only these SLOs (repeat the parameter, at most {MAX_HISTORY_SLOS})"),
    ] = None,
) -> list[SLOHistory]:
    if until is not None and until < since:
        raise invalid_request(loc=("query", "until"), message="until is before since")
    if slo is not None and len(slo) > MAX_HISTORY_SLOS:
        raise invalid_request(
            loc=("query", "slo"), message=f"at most {MAX_HISTORY_SLOS} SLOs in one request"
        )
    found = histories(
        session, since=since, until=until, service=service, slo_ids=slo, points=points
    )
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
    stale = (datetime.now(UTC) - history[0].at).total_seconds() > stale_after
    return _status(history[0], stale=stale)


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
