"""``/api/v1/slos/{id}/traces`` and ``/api/v1/traces/{trace_id}/logs``: examples from Jaeger and
the log lines of one trace from Elasticsearch, for the SLO detail page of the dashboards.

* ``GET /slos/{slo_id}/traces?kind=slow|error&start=&end=&limit=&min_duration_ms=``: traces of
  the SLO's service in ``[start, end)`` (default: the last hour). ``slow``: slowest first, at
  least ``min_duration_ms`` long; without it the SLO's latency threshold
  (``details.latency_threshold_s`` of its latest evaluation), else no lower bound. ``error``:
  traces with an error span, newest first. Each row links to the Jaeger UI.
* ``GET /traces/{trace_id}/logs?start=&end=&limit=``: the ECS log lines carrying ``trace.id``,
  oldest first.

When a source has nothing to say or cannot be reached, the answer is 200 with ``no_data``
(``reason`` and ``detail``) instead of an empty list: ``unknown_service``, ``not_found``,
``no_index``, ``empty_result``, ``not_a_number`` (the sources' :class:`NoData` reasons) or
``source_unavailable``. A source that refuses the request is a 502.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import AwareDatetime, BaseModel, Field

from controlplane.api.deps import ReaderDep, SettingsDep, SloIdPath
from controlplane.api.errors import invalid_request
from controlplane.core.validation import IsoDateTime
from controlplane.evaluation.details import EvaluationDetails
from controlplane.sources.base import (
    LogLine,
    NoData,
    SourceUnavailable,
    TraceSummary,
)
from controlplane.sources.elasticsearch import ElasticsearchSource
from controlplane.sources.jaeger import JaegerSource
from controlplane.store.evaluations import evaluation_history

__all__ = ["router"]

router = APIRouter(tags=["traces"])

DEFAULT_WINDOW = timedelta(hours=1)
MAX_WINDOW = timedelta(days=31)
TRACE_ID_PATTERN = r"^[0-9a-fA-F]{16,32}$"

TraceKind = Literal["slow", "error"]
NoDataReasonPublic = Literal[
    "empty_result",
    "not_a_number",
    "no_index",
    "unknown_service",
    "not_found",
    "source_unavailable",
]


class NoDataPublic(BaseModel):
    """Why a source had nothing to show (never an empty list standing for "down")."""

    source: Literal["jaeger", "elasticsearch"]
    reason: NoDataReasonPublic
    detail: str


class TraceRow(BaseModel):
    trace_id: str
    service: str
    operation: str = Field(description="Operation of the root span")
    start: AwareDatetime
    duration_ms: float
    span_count: int
    error: bool
    ui_url: str = Field(description="The trace in the Jaeger UI")


class SLOTraces(BaseModel):
    slo_id: str
    service: str
    kind: TraceKind
    start: AwareDatetime
    end: AwareDatetime
    min_duration_ms: float | None = Field(
        description="Lower bound of the slow traces' duration (null for error traces)"
    )
    min_duration_from: Literal["query", "slo_threshold", "none"] | None
    traces: list[TraceRow]
    no_data: NoDataPublic | None


class LogLinePublic(BaseModel):
    at: AwareDatetime
    level: str | None
    message: str
    service: str | None
    span_id: str | None
    index: str


class TraceLogs(BaseModel):
    trace_id: str
    lines: list[LogLinePublic]
    no_data: NoDataPublic | None


def jaeger_source(settings: SettingsDep) -> Iterator[JaegerSource]:
    source = JaegerSource.from_settings(settings)
    try:
        yield source
    finally:
        source.close()


def elasticsearch_source(settings: SettingsDep) -> Iterator[ElasticsearchSource]:
    source = ElasticsearchSource.from_settings(settings)
    try:
        yield source
    finally:
        source.close()


JaegerDep = Annotated[JaegerSource, Depends(jaeger_source)]
ElasticsearchDep = Annotated[ElasticsearchSource, Depends(elasticsearch_source)]


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    until = end or datetime.now(UTC)
    since = start or until - DEFAULT_WINDOW
    if since >= until:
        raise invalid_request(loc=("query", "start"), message="start must be before end")
    if until - since > MAX_WINDOW:
        raise invalid_request(
            loc=("query", "start"), message=f"the window is longer than {MAX_WINDOW.days} days"
        )
    return since, until


def _no_data(source: Literal["jaeger", "elasticsearch"], found: NoData) -> NoDataPublic:
    return NoDataPublic(source=source, reason=found.reason, detail=found.detail)


def _unavailable(
    source: Literal["jaeger", "elasticsearch"], error: SourceUnavailable
) -> NoDataPublic:
    return NoDataPublic(source=source, reason="source_unavailable", detail=str(error))


def _row(summary: TraceSummary, *, ui_base: str) -> TraceRow:
    return TraceRow(
        trace_id=summary.trace_id,
        service=summary.service,
        operation=summary.operation,
        start=summary.start,
        duration_ms=summary.duration.total_seconds() * 1000,
        span_count=summary.span_count,
        error=summary.error,
        ui_url=f"{ui_base}/trace/{summary.trace_id}",
    )


@router.get(
    "/slos/{slo_id}/traces",
    response_model=SLOTraces,
    summary="Example slow or error traces of an SLO's service from Jaeger",
    responses={404: {"description": "SLO never evaluated"}, 502: {"description": "refused"}},
)
def slo_traces(
    slo_id: SloIdPath,
    session: ReaderDep,
    settings: SettingsDep,
    jaeger: JaegerDep,
    kind: TraceKind = "slow",
    start: IsoDateTime | None = None,
    end: IsoDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    min_duration_ms: Annotated[float | None, Query(ge=0)] = None,
) -> SLOTraces:
    latest = evaluation_history(session, slo_id=slo_id, limit=1)
    if not latest:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evaluation of SLO {slo_id!r}")
    evaluation = latest[0]
    since, until = _window(start, end)
    bound: float | None = None
    bound_from: Literal["query", "slo_threshold", "none"] | None = None
    if kind == "slow":
        threshold = EvaluationDetails.model_validate(evaluation.details).latency_threshold_s
        if min_duration_ms is not None:
            bound, bound_from = min_duration_ms, "query"
        elif threshold is not None and threshold > 0:
            bound, bound_from = float(threshold) * 1000, "slo_threshold"
        else:
            bound, bound_from = 0.0, "none"
    answer = SLOTraces(
        slo_id=slo_id,
        service=evaluation.service,
        kind=kind,
        start=since,
        end=until,
        min_duration_ms=bound,
        min_duration_from=bound_from,
        traces=[],
        no_data=None,
    )
    try:
        if kind == "slow":
            found = jaeger.slowest_traces(
                service=evaluation.service,
                start=since,
                end=until,
                min_duration=timedelta(milliseconds=bound or 0.0),
                limit=limit,
            )
        else:
            found = jaeger.error_traces(
                service=evaluation.service, start=since, end=until, limit=limit
            )
    except SourceUnavailable as exc:
        return answer.model_copy(update={"no_data": _unavailable("jaeger", exc)})
    if isinstance(found, NoData):
        return answer.model_copy(update={"no_data": _no_data("jaeger", found)})
    rows = [_row(summary, ui_base=settings.sources.jaeger_url) for summary in found]
    return answer.model_copy(update={"traces": rows})


def _line(line: LogLine) -> LogLinePublic:
    return LogLinePublic(
        at=line.at,
        level=line.level,
        message=line.message,
        service=line.service,
        span_id=line.span_id,
        index=line.index,
    )


@router.get(
    "/traces/{trace_id}/logs",
    response_model=TraceLogs,
    summary="Log lines of one trace from Elasticsearch, oldest first",
    responses={502: {"description": "Elasticsearch refused the request"}},
)
def trace_logs(
    trace_id: Annotated[str, Path(pattern=TRACE_ID_PATTERN)],
    elasticsearch: ElasticsearchDep,
    start: IsoDateTime | None = None,
    end: IsoDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> TraceLogs:
    if start is not None and end is not None and start >= end:
        raise invalid_request(loc=("query", "start"), message="start must be before end")
    wanted = trace_id.lower()
    try:
        found = elasticsearch.logs_for_trace(wanted, start=start, end=end, limit=limit)
    except SourceUnavailable as exc:
        return TraceLogs(trace_id=wanted, lines=[], no_data=_unavailable("elasticsearch", exc))
    if isinstance(found, NoData):
        return TraceLogs(trace_id=wanted, lines=[], no_data=_no_data("elasticsearch", found))
    return TraceLogs(trace_id=wanted, lines=[_line(line) for line in found], no_data=None)
