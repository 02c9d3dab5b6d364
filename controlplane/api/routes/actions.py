"""``/api/v1/actions``: the kill switch, the decisions waiting for an operator, and a planned
database switchover asked for by one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import AwareDatetime, BaseModel, Field

from controlplane.api.deps import (
    CurrentOperator,
    Principal,
    ReaderDep,
    RuntimeDep,
    WriterDep,
    database_operations,
)
from controlplane.api.errors import ENGINE_RESPONSES, ErrorAnswer
from controlplane.core.validation import NO_NUL
from controlplane.store.actions import (
    KILL_SWITCH,
    get_flag,
    list_pending,
    resolve_pending,
    set_flag,
)
from controlplane.store.audit import (
    AuditDecision,
    StoredAuditEntry,
    add_evidence,
    record_decision,
    record_outcome,
)

router = APIRouter(prefix="/actions", tags=["actions"])


class ActionState(BaseModel):
    kill_switch: bool
    changed_at: AwareDatetime | None
    changed_by: str | None
    reason: str | None


class KillSwitchChange(BaseModel):
    enabled: bool = Field(strict=True)
    reason: str = Field(default="", max_length=1000)


class PendingAction(BaseModel):
    decision_id: str
    at: AwareDatetime
    action: str
    service: str
    target: str
    reason: str
    evidence: dict[str, Any]


class SwitchoverRequest(BaseModel):
    #: The member to hand over to; none: the control plane chooses (smallest lag).
    candidate: str | None = Field(default=None, min_length=1, max_length=200)


class Verdict(BaseModel):
    comment: str = Field(default="", max_length=1000)


def _state(session: Any) -> ActionState:
    flag = get_flag(session, KILL_SWITCH)
    return ActionState(
        kill_switch=flag.enabled,
        changed_at=flag.changed_at,
        changed_by=flag.changed_by,
        reason=flag.reason,
    )


@router.get("/state", response_model=ActionState, summary="Whether actions may run")
def state(session: ReaderDep) -> ActionState:
    return _state(session)


@router.put(
    "/kill-switch",
    response_model=ActionState,
    summary="Stop (enabled=true) or allow (false) every action; operator role",
)
def kill_switch(
    change: KillSwitchChange, operator: CurrentOperator, session: WriterDep
) -> ActionState:
    now = datetime.now(UTC)
    set_flag(
        session,
        name=KILL_SWITCH,
        enabled=change.enabled,
        at=now,
        by=operator.name,
        reason=change.reason,
    )
    word = "on" if change.enabled else "off"
    entry = record_decision(
        session,
        decision=AuditDecision(
            at=now,
            actor=operator.actor,
            action="kill_switch",
            target="actions/kill-switch",
            decision="taken",
            reason=f"kill switch {word} by {operator.name}"
            + (f": {change.reason}" if change.reason else ""),
            evidence={"enabled": change.enabled, "requested_by": operator.evidence()},
        ),
    )
    record_outcome(session, decision_id=entry.decision_id, outcome=word, at=now)
    return _state(session)


@router.get("/pending", response_model=list[PendingAction], summary="Decisions awaiting approval")
def pending(session: ReaderDep) -> list[PendingAction]:
    return [
        PendingAction(
            decision_id=entry.decision_id,
            at=entry.at,
            action=entry.action,
            service=str(entry.evidence.get("service", entry.target.split("/")[-1])),
            target=entry.target,
            reason=entry.reason,
            evidence=entry.evidence,
        )
        for entry in list_pending(session)
    ]


def _resolve(
    decision_id: str, *, approve: bool, verdict: Verdict, operator: Principal, session: Any
) -> StoredAuditEntry:
    return resolve_pending(
        session,
        decision_id=decision_id,
        approve=approve,
        by=operator.name,
        at=datetime.now(UTC),
        comment=verdict.comment,
        who=operator.evidence(),
    )


def with_requester(runtime: Any, entry: StoredAuditEntry, operator: Principal) -> StoredAuditEntry:
    """The decision with who asked for it in its evidence (``requested_by``)."""
    with runtime.database.writer() as session:
        updated = add_evidence(
            session,
            decision_id=entry.decision_id,
            values={"requested_by": operator.evidence()},
        )
    return updated or entry


DecisionIdPath = Annotated[str, Path(max_length=64, pattern=NO_NUL)]

#: An unknown decision is a 404; one no longer pending (decided by someone else) a 409.
_DECIDED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorAnswer, "description": "The decision is no longer pending"}
}


@router.post(
    "/{decision_id}/approve",
    response_model=StoredAuditEntry,
    responses=_DECIDED,
    summary="Approve a pending action (operator role); the leader then runs it",
)
def approve(
    decision_id: DecisionIdPath, verdict: Verdict, operator: CurrentOperator, session: WriterDep
) -> StoredAuditEntry:
    return _resolve(decision_id, approve=True, verdict=verdict, operator=operator, session=session)


@router.post(
    "/{decision_id}/deny",
    response_model=StoredAuditEntry,
    responses=_DECIDED,
    summary="Deny a pending action (operator role)",
)
def deny(
    decision_id: DecisionIdPath, verdict: Verdict, operator: CurrentOperator, session: WriterDep
) -> StoredAuditEntry:
    return _resolve(decision_id, approve=False, verdict=verdict, operator=operator, session=session)


@router.post(
    "/switchover",
    response_model=StoredAuditEntry,
    responses=ENGINE_RESPONSES,
    summary="Ask for a planned database switchover (operator); decided through the gate",
)
def switchover(
    request: SwitchoverRequest, operator: CurrentOperator, runtime: RuntimeDep
) -> StoredAuditEntry:
    """The ``switchover_database`` decision: pending (approval mode, the shipped policy's), taken
    and run (Patroni's ``POST /switchover``; the outcome says how it went), or refused."""
    entry = database_operations(runtime).request_switchover(
        actor=operator.actor, candidate=request.candidate
    )
    return with_requester(runtime, entry, operator)
