"""SLO evaluations: written by the evaluation loop, read by the API and the dashboards."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.store.models import SLOEvaluation

__all__ = [
    "EvaluationRecord",
    "StoredEvaluation",
    "evaluation_history",
    "latest_evaluations",
    "record_evaluations",
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


def latest_evaluations(session: Session, *, service: str | None = None) -> list[StoredEvaluation]:
    """The most recent evaluation of every SLO (optionally of one service), by SLO id."""
    ranked = select(
        SLOEvaluation.id,
        func.row_number()
        .over(
            partition_by=SLOEvaluation.slo_id,
            order_by=(SLOEvaluation.at.desc(), SLOEvaluation.id.desc()),
        )
        .label("rank"),
    )
    if service is not None:
        ranked = ranked.where(SLOEvaluation.service == service)
    latest = ranked.subquery()
    statement = (
        select(SLOEvaluation)
        .join(latest, latest.c.id == SLOEvaluation.id)
        .where(latest.c.rank == 1)
        .order_by(SLOEvaluation.slo_id)
    )
    return [StoredEvaluation.model_validate(row) for row in session.scalars(statement)]


def evaluation_history(
    session: Session,
    *,
    slo_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 500,
) -> list[StoredEvaluation]:
    """Evaluations of one SLO, newest first, within [since, until]."""
    statement = select(SLOEvaluation).where(SLOEvaluation.slo_id == slo_id)
    if since is not None:
        statement = statement.where(SLOEvaluation.at >= since)
    if until is not None:
        statement = statement.where(SLOEvaluation.at <= until)
    statement = statement.order_by(SLOEvaluation.at.desc(), SLOEvaluation.id.desc()).limit(limit)
    return [StoredEvaluation.model_validate(row) for row in session.scalars(statement)]


def slo_exists(session: Session, *, slo_id: str) -> bool:
    statement = select(SLOEvaluation.id).where(SLOEvaluation.slo_id == slo_id).limit(1)
    return session.scalar(statement) is not None
