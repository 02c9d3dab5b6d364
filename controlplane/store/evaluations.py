"""SLO evaluations: written by the evaluation loop, read by the API and the dashboards."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from controlplane.store.models import SLOEvaluation
from slo.series import thin

#: Any ``select(...)`` statement, whatever its columns.
AnySelect = TypeVar("AnySelect", bound="Select[*tuple[Any, ...]]")

__all__ = [
    "EvaluationRecord",
    "HistoryPoint",
    "StoredEvaluation",
    "evaluation_history",
    "evaluations_version",
    "histories",
    "latest_evaluations",
    "record_evaluations",
    "written_after",
]


class EvaluationRecord(BaseModel):
    """One SLO evaluated at one instant.

    ``state`` is ``ok``, ``no_data``, ``insufficient_traffic`` (the states of ``slo.maths``) or
    ``error`` when a source failed; ``sli``, ``budget_remaining`` and a window's burn rate are
    ``None`` when there was nothing to compute them from, never 0.
    """

    model_config = ConfigDict(frozen=True)

    slo_id: str = Field(min_length=1, max_length=200)
    service: str = Field(min_length=1, max_length=200)
    at: AwareDatetime
    state: str = Field(min_length=1, max_length=32)
    sli: float | None = None
    objective: float = Field(gt=0, lt=1)
    budget_remaining: float | None = None
    burn_rates: dict[str, float | None] = Field(default_factory=dict)
    no_data_reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("sli", "budget_remaining")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number or None (no data)")
        return value

    @field_validator("burn_rates")
    @classmethod
    def _finite_rates(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        for window, rate in value.items():
            if rate is not None and math.isnan(rate):
                raise ValueError(f"burn rate of {window} is NaN: store None (no data) instead")
        return value


class StoredEvaluation(EvaluationRecord):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int


def record_evaluations(session: Session, *, evaluations: Sequence[EvaluationRecord]) -> list[int]:
    """Insert evaluations; returns their ids in order."""
    rows = [SLOEvaluation(**evaluation.model_dump()) for evaluation in evaluations]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def evaluations_version(session: Session) -> tuple[int | None, int]:
    """(newest evaluation id, number of evaluations): equal twice means nothing was written
    or deleted in between (see :func:`written_after`)."""
    newest, count = session.execute(
        select(func.max(SLOEvaluation.id), func.count(SLOEvaluation.id))
    ).one()
    return newest, int(count)


def written_after(session: Session, *, after: int) -> int:
    """How many evaluations have an id above ``after`` (the primary key's range)."""
    return int(session.scalar(select(func.count()).where(SLOEvaluation.id > after)) or 0)


def latest_evaluations(
    session: Session, *, service: str | None = None, changed_after: int | None = None
) -> list[StoredEvaluation]:
    """The most recent evaluation of every SLO (optionally of one service), by SLO id; with
    ``changed_after`` only of the SLOs with an evaluation whose id is above it.

    The newest instant per SLO comes from the ``(slo_id, at)`` index alone (a covering scan,
    no sort of the rows), then only those rows are read: an order of magnitude cheaper than
    ranking every evaluation. Two evaluations at the same instant: the later written wins.
    """
    newest = select(SLOEvaluation.slo_id, func.max(SLOEvaluation.at).label("at"))
    if service is not None:
        newest = newest.where(SLOEvaluation.service == service)
    if changed_after is not None:
        changed = select(SLOEvaluation.slo_id).where(SLOEvaluation.id > changed_after)
        newest = newest.where(SLOEvaluation.slo_id.in_(changed.distinct()))
    newest_at = newest.group_by(SLOEvaluation.slo_id).subquery()
    ids = (
        select(func.max(SLOEvaluation.id))
        .join(
            newest_at,
            and_(newest_at.c.slo_id == SLOEvaluation.slo_id, newest_at.c.at == SLOEvaluation.at),
        )
        .group_by(SLOEvaluation.slo_id)
    )
    if service is not None:
        ids = ids.where(SLOEvaluation.service == service)
    statement = (
        select(SLOEvaluation).where(SLOEvaluation.id.in_(ids)).order_by(SLOEvaluation.slo_id)
    )
    return [StoredEvaluation.model_validate(row) for row in session.scalars(statement)]


def _within(statement: AnySelect, *, since: datetime | None, until: datetime | None) -> AnySelect:
    if since is not None:
        statement = statement.where(SLOEvaluation.at >= since)
    if until is not None:
        statement = statement.where(SLOEvaluation.at <= until)
    return statement


def evaluation_history(
    session: Session,
    *,
    slo_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 500,
) -> list[StoredEvaluation]:
    """Evaluations of one SLO, newest first, within [since, until]."""
    statement = _within(
        select(SLOEvaluation).where(SLOEvaluation.slo_id == slo_id), since=since, until=until
    )
    statement = statement.order_by(SLOEvaluation.at.desc(), SLOEvaluation.id.desc()).limit(limit)
    return [StoredEvaluation.model_validate(row) for row in session.scalars(statement)]


def slo_exists(session: Session, *, slo_id: str) -> bool:
    statement = select(SLOEvaluation.id).where(SLOEvaluation.slo_id == slo_id).limit(1)
    return session.scalar(statement) is not None


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One evaluation as a point of a series: what a sparkline draws."""

    at: datetime
    state: str
    sli: float | None
    budget_remaining: float | None


def histories(
    session: Session,
    *,
    since: datetime,
    until: datetime | None = None,
    service: str | None = None,
    slo_ids: Sequence[str] | None = None,
    points: int = 120,
) -> dict[str, list[HistoryPoint]]:
    """Every SLO's evaluations within [since, until] in one query, by SLO id, oldest first,
    thinned to at most ``points`` per SLO (:func:`thin`). Reads four columns, not the rows.
    ``slo_ids``: only these SLOs (e.g. one page of the console's overview)."""
    statement = select(
        SLOEvaluation.slo_id,
        SLOEvaluation.at,
        SLOEvaluation.state,
        SLOEvaluation.sli,
        SLOEvaluation.budget_remaining,
    )
    statement = _within(statement, since=since, until=until)
    if service is not None:
        statement = statement.where(SLOEvaluation.service == service)
    if slo_ids is not None:
        statement = statement.where(SLOEvaluation.slo_id.in_(list(slo_ids)))
    statement = statement.order_by(SLOEvaluation.slo_id, SLOEvaluation.at, SLOEvaluation.id)
    series: dict[str, list[HistoryPoint]] = {}
    for slo_id, at, state, sli, budget_remaining in session.execute(statement):
        series.setdefault(slo_id, []).append(
            HistoryPoint(at=at, state=state, sli=sli, budget_remaining=budget_remaining)
        )
    return {slo_id: thin(found, most=points) for slo_id, found in series.items()}
