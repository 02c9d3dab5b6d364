"""The one gate every action passes (pure: decisions from data, no I/O).

Order (DESIGN.md, safety model): kill switch → policy allows → not in cooldown → token-bucket
rate budget (per service and action) and the global hourly cap → bounds (min / max replicas, max
step) → inputs present and fresh → this replica is leader (with its fencing token) → mode
(``enforce`` acts, ``dry-run`` decides and audits only, ``approval`` waits for an operator).

The result lists every check with its outcome, so the audit log shows *why* an action was taken
or refused, not only that it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

ActionKind = Literal[
    "scale_out",
    "scale_in",
    "set_replica_bounds",
    "failover_database",
    "switchover_database",
    "run_drill",
    "backup",
    "validate_restore",
    "rejoin_member",
]
Mode = Literal["enforce", "dry-run", "approval"]
Outcome = Literal["act", "dry-run", "await-approval", "refuse"]


@dataclass(frozen=True, kw_only=True)
class InputValue:
    value: float | None
    observed_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class ActionRequest:
    action: ActionKind
    service: str
    target: str
    trigger: str
    current_replicas: int | None = None
    desired_replicas: int | None = None
    #: Inputs the decision depends on (metric values with their sample time).
    inputs: Mapping[str, InputValue] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RateBudget:
    """Token bucket: ``capacity`` actions at once, refilled at ``per_hour`` tokens an hour."""

    capacity: int
    per_hour: float


@dataclass(frozen=True, kw_only=True)
class ActionRule:
    action: ActionKind
    allowed: bool = True
    cooldown: timedelta = timedelta(minutes=5)
    budget: RateBudget = RateBudget(capacity=3, per_hour=6)
    min_replicas: int | None = None
    max_replicas: int | None = None
    max_step: int | None = None
    max_input_age: timedelta = timedelta(minutes=2)
    mode: Mode = "enforce"


@dataclass(frozen=True, kw_only=True)
class PastAction:
    """An earlier decision that was *taken* (acted on), from the audit log."""

    at: datetime
    service: str
    action: ActionKind


@dataclass(frozen=True, kw_only=True)
class GateContext:
    now: datetime
    kill_switch: bool
    is_leader: bool
    fencing_token: int | None
    global_cap_per_hour: int
    history: Sequence[PastAction] = ()


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, kw_only=True)
class GateResult:
    outcome: Outcome
    reason: str
    checks: tuple[Check, ...]
    fencing_token: int | None

    @property
    def allowed(self) -> bool:
        return self.outcome != "refuse"

    def evidence(self) -> dict[str, Any]:
        return {
            "gate": [
                {"check": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
            "outcome": self.outcome,
        }


def bucket_tokens(*, budget: RateBudget, taken_at: Sequence[datetime], now: datetime) -> float:
    """Tokens left now: start full, refill continuously, spend one per taken action."""
    tokens = float(budget.capacity)
    last: datetime | None = None
    rate = budget.per_hour / 3600.0
    for at in sorted(taken_at):
        if last is not None:
            tokens = min(budget.capacity, tokens + (at - last).total_seconds() * rate)
        tokens -= 1
        last = at
    if last is not None:
        tokens = min(budget.capacity, tokens + (now - last).total_seconds() * rate)
    return tokens


def evaluate_gate(
    request: ActionRequest, *, rule: ActionRule | None, context: GateContext
) -> GateResult:
    checks: list[Check] = []

    def refuse(name: str, detail: str) -> GateResult:
        checks.append(Check(name=name, passed=False, detail=detail))
        return GateResult(
            outcome="refuse",
            reason=f"{name}: {detail}",
            checks=tuple(checks),
            fencing_token=context.fencing_token,
        )

    def passed(name: str, detail: str) -> None:
        checks.append(Check(name=name, passed=True, detail=detail))

    now = context.now
    if context.kill_switch:
        return refuse("kill_switch", "the kill switch is on: no action runs")
    passed("kill_switch", "off")

    if rule is None or not rule.allowed:
        return refuse("policy", f"no policy allows {request.action} for {request.service}")
    passed("policy", f"{request.action} allowed for {request.service}")

    same = [
        p for p in context.history if p.service == request.service and p.action == request.action
    ]
    last = max((p.at for p in same), default=None)
    if last is not None and now - last < rule.cooldown:
        left = rule.cooldown - (now - last)
        return refuse(
            "cooldown",
            f"last {request.action} at {last.isoformat()}; cooldown "
            f"{rule.cooldown.total_seconds():.0f} s, {left.total_seconds():.0f} s left",
        )
    passed("cooldown", "not in cooldown" if last is None else f"last at {last.isoformat()}")

    tokens = bucket_tokens(budget=rule.budget, taken_at=[p.at for p in same], now=now)
    if tokens < 1:
        return refuse(
            "rate_budget",
            f"{tokens:.2f} tokens left for {request.service}/{request.action} "
            f"(capacity {rule.budget.capacity}, {rule.budget.per_hour}/h)",
        )
    hour = [p for p in context.history if now - p.at < timedelta(hours=1)]
    if len(hour) >= context.global_cap_per_hour:
        return refuse(
            "rate_budget",
            f"global cap reached: {len(hour)} actions in the last hour "
            f"(cap {context.global_cap_per_hour})",
        )
    passed(
        "rate_budget",
        f"{tokens:.2f} tokens; {len(hour)}/{context.global_cap_per_hour} actions this hour",
    )

    if request.desired_replicas is not None:
        desired, current = request.desired_replicas, request.current_replicas
        if rule.min_replicas is not None and desired < rule.min_replicas:
            return refuse("bounds", f"{desired} replicas is below the minimum {rule.min_replicas}")
        if rule.max_replicas is not None and desired > rule.max_replicas:
            return refuse("bounds", f"{desired} replicas is above the maximum {rule.max_replicas}")
        if current is None:
            return refuse("bounds", "the current replica count is unknown")
        if rule.max_step is not None and abs(desired - current) > rule.max_step:
            return refuse("bounds", f"step {current} → {desired} is larger than {rule.max_step}")
        passed("bounds", f"{current} → {desired} within bounds")
    else:
        passed("bounds", "no replica change")

    stale = [
        name
        for name, value in request.inputs.items()
        if value.value is None
        or value.observed_at is None
        or now - value.observed_at > rule.max_input_age
    ]
    if stale:
        return refuse("inputs", f"missing or stale: {', '.join(sorted(stale))}")
    passed("inputs", f"{len(request.inputs)} input(s) fresh")

    if not context.is_leader or context.fencing_token is None:
        return refuse("leader", "this replica does not hold the leader lease")
    passed("leader", f"leader with fencing token {context.fencing_token}")

    if rule.mode == "dry-run":
        passed("mode", "dry-run: decide and audit only")
        return GateResult(
            outcome="dry-run",
            reason="dry-run: nothing changes",
            checks=tuple(checks),
            fencing_token=context.fencing_token,
        )
    if rule.mode == "approval":
        passed("mode", "approval: waits for an operator")
        return GateResult(
            outcome="await-approval",
            reason="waiting for an operator's approval",
            checks=tuple(checks),
            fencing_token=context.fencing_token,
        )
    passed("mode", "enforce")
    return GateResult(
        outcome="act",
        reason="all checks passed",
        checks=tuple(checks),
        fencing_token=context.fencing_token,
    )
