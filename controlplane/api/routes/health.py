"""``/api/v1/health``: liveness (no dependency checked) and readiness (store, schema, leader)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from controlplane.api.deps import RuntimeDep
from controlplane.store.database import head_revision

router = APIRouter(prefix="/health", tags=["health"])


class Liveness(BaseModel):
    status: Literal["alive"] = "alive"


class DatabaseHealth(BaseModel):
    ok: bool
    dialect: str
    revision: str | None
    expected_revision: str
    error: str | None = None


class LeaderHealth(BaseModel):
    mode: str
    replica_id: str
    is_leader: bool
    fencing_token: int | None
    since: datetime | None
    confirmed_at: datetime | None
    #: The lease's expiry as this replica last renewed it (while it leads).
    lease_expires_at: datetime | None = None
    lease_holder: str | None
    lease_token: int | None
    last_error: str | None


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    database: DatabaseHealth
    leader: LeaderHealth


@router.get("/live", response_model=Liveness, summary="The process answers")
def live() -> Liveness:
    return Liveness()


@router.get(
    "",
    response_model=Readiness,
    summary="Ready to serve: the store answers at the expected schema revision",
    responses={503: {"model": Readiness, "description": "not ready"}},
)
def ready(runtime: RuntimeDep, response: Response) -> Readiness:
    database = runtime.database
    expected = head_revision()
    try:
        database.ping()
        revision = database.current_revision()
        db = DatabaseHealth(
            ok=revision == expected,
            dialect=database.dialect,
            revision=revision,
            expected_revision=expected,
            error=None if revision == expected else "schema is not at the expected revision",
        )
    except SQLAlchemyError as exc:
        db = DatabaseHealth(
            ok=False,
            dialect=database.dialect,
            revision=None,
            expected_revision=expected,
            error=str(exc).splitlines()[0],
        )
    leader = runtime.leadership.status()
    if not db.ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="ready" if db.ok else "not_ready",
        database=db,
        leader=LeaderHealth(
            mode=leader.mode,
            replica_id=leader.replica_id,
            is_leader=leader.is_leader,
            fencing_token=leader.fencing_token,
            since=leader.since,
            confirmed_at=leader.confirmed_at,
            lease_expires_at=leader.lease_expires_at,
            lease_holder=leader.lease_holder,
            lease_token=leader.lease_token,
            last_error=leader.last_error,
        ),
    )
