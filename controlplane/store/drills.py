"""DR drills and restore validations: what was measured, for the DR checks and the dashboards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.core.validation import POSTGRES_INT_MAX, IsoDateTime, refuse_nul
from controlplane.store.models import DrillRun, RestoreValidationRun

__all__ = [
    "NewDrill",
    "StoredDrill",
    "StoredRestoreValidation",
    "list_drills",
    "list_restore_validations",
    "record_drill",
    "record_restore_validation",
]


class NewDrill(BaseModel):
    model_config = ConfigDict(frozen=True)

    database: str = Field(min_length=1, max_length=200)
    kind: str = Field(pattern="^(switchover|failover)$")
    started_at: IsoDateTime
    finished_at: IsoDateTime
    succeeded: bool = Field(strict=True)
    measured_rto_s: float = Field(ge=0, allow_inf_nan=False, strict=True)
    measured_rpo_s: float | None = Field(default=None, ge=0, allow_inf_nan=False, strict=True)
    lost_acknowledged_writes: int | None = Field(
        default=None, ge=0, le=POSTGRES_INT_MAX, strict=True
    )
    acknowledged_writes: int | None = Field(default=None, ge=0, le=POSTGRES_INT_MAX, strict=True)
    details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _storable(self) -> NewDrill:
        refuse_nul({"database": self.database, "details": self.details})
        if self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        return self


class StoredDrill(NewDrill):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int


class StoredRestoreValidation(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    database: str
    finished_at: AwareDatetime
    succeeded: bool
    details: dict[str, Any]


def record_drill(session: Session, *, drill: NewDrill) -> StoredDrill:
    row = DrillRun(**drill.model_dump())
    session.add(row)
    session.flush()
    return StoredDrill.model_validate(row)


def list_drills(
    session: Session, *, database: str | None = None, limit: int = 100
) -> list[StoredDrill]:
    statement = select(DrillRun)
    if database is not None:
        statement = statement.where(DrillRun.database == database)
    statement = statement.order_by(DrillRun.finished_at.desc()).limit(limit)
    return [StoredDrill.model_validate(row) for row in session.scalars(statement)]


def record_restore_validation(
    session: Session,
    *,
    database: str,
    finished_at: datetime,
    succeeded: bool,
    details: dict[str, Any] | None = None,
) -> StoredRestoreValidation:
    row = RestoreValidationRun(
        database=database, finished_at=finished_at, succeeded=succeeded, details=details or {}
    )
    session.add(row)
    session.flush()
    return StoredRestoreValidation.model_validate(row)


def list_restore_validations(
    session: Session,
    *,
    database: str | None = None,
    succeeded: bool | None = None,
    limit: int = 100,
) -> list[StoredRestoreValidation]:
    statement = select(RestoreValidationRun)
    if database is not None:
        statement = statement.where(RestoreValidationRun.database == database)
    if succeeded is not None:
        statement = statement.where(RestoreValidationRun.succeeded.is_(succeeded))
    statement = statement.order_by(RestoreValidationRun.finished_at.desc()).limit(limit)
    return [StoredRestoreValidation.model_validate(row) for row in session.scalars(statement)]
