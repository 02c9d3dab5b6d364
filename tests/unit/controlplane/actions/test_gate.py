from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.actions.gate import (
    ActionRequest,
    ActionRule,
    GateContext,
    InputValue,
    PastAction,
    RateBudget,
    bucket_tokens,
    evaluate_gate,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
RULE = ActionRule(
    action="scale_out",
    cooldown=timedelta(minutes=5),
    budget=RateBudget(capacity=2, per_hour=4),
    min_replicas=3,
    max_replicas=20,
    max_step=4,
)


def request(**changes: object) -> ActionRequest:
    values: dict[str, object] = {
        "action": "scale_out",
        "service": "inventory",
        "target": "service/inventory",
        "trigger": "alert:abc",
        "current_replicas": 4,
        "desired_replicas": 6,
        "inputs": {"cpu": InputValue(value=91.0, observed_at=NOW - timedelta(seconds=20))},
    }
    values.update(changes)
    return ActionRequest(**values)  # type: ignore[arg-type]


def context(**changes: object) -> GateContext:
    values: dict[str, object] = {
        "now": NOW,
        "kill_switch": False,
        "is_leader": True,
        "fencing_token": 7,
        "global_cap_per_hour": 10,
        "history": (),
    }
    values.update(changes)
    return GateContext(**values)  # type: ignore[arg-type]


def refused_by(result: object) -> str:
    assert hasattr(result, "checks")
    failed = [c for c in result.checks if not c.passed]
    assert len(failed) == 1
    return str(failed[0].name)


def test_everything_in_order_acts_and_lists_each_check() -> None:
    result = evaluate_gate(request(), rule=RULE, context=context())
    assert result.outcome == "act"
    assert [c.name for c in result.checks] == [
        "kill_switch",
        "policy",
        "cooldown",
        "rate_budget",
        "bounds",
        "inputs",
        "leader",
        "mode",
    ]
    assert result.fencing_token == 7


def test_kill_switch_refuses_first() -> None:
    result = evaluate_gate(request(), rule=RULE, context=context(kill_switch=True))
    assert result.outcome == "refuse"
    assert refused_by(result) == "kill_switch"


def test_no_policy_refuses() -> None:
    assert refused_by(evaluate_gate(request(), rule=None, context=context())) == "policy"
    denied = ActionRule(action="scale_out", allowed=False)
    assert refused_by(evaluate_gate(request(), rule=denied, context=context())) == "policy"


def test_cooldown_refuses_a_second_action() -> None:
    history = (PastAction(at=NOW - timedelta(minutes=2), service="inventory", action="scale_out"),)
    result = evaluate_gate(request(), rule=RULE, context=context(history=history))
    assert refused_by(result) == "cooldown"
    assert "180 s left" in result.reason
    other = (PastAction(at=NOW - timedelta(minutes=2), service="billing", action="scale_out"),)
    assert evaluate_gate(request(), rule=RULE, context=context(history=other)).outcome == "act"


def test_token_bucket_refills_over_time() -> None:
    budget = RateBudget(capacity=2, per_hour=4)  # one token every 15 minutes
    two_ago = [NOW - timedelta(minutes=10), NOW - timedelta(minutes=6)]
    assert bucket_tokens(budget=budget, taken_at=two_ago, now=NOW) == pytest.approx(2 - 2 + 10 / 15)
    history = tuple(PastAction(at=t, service="inventory", action="scale_out") for t in two_ago)
    assert refused_by(evaluate_gate(request(), rule=RULE, context=context(history=history))) == (
        "rate_budget"
    )
    assert bucket_tokens(budget=budget, taken_at=[], now=NOW) == 2


def test_global_hourly_cap() -> None:
    history = tuple(
        PastAction(at=NOW - timedelta(minutes=10 + i), service=f"svc{i}", action="scale_out")
        for i in range(3)
    )
    result = evaluate_gate(
        request(), rule=RULE, context=context(history=history, global_cap_per_hour=3)
    )
    assert refused_by(result) == "rate_budget"
    assert "global cap" in result.reason


@pytest.mark.parametrize(
    ("current", "desired", "fragment"),
    [
        (4, 21, "above the maximum 20"),
        (4, 2, "below the minimum 3"),
        (4, 9, "larger than 4"),
        (None, 6, "unknown"),
    ],
)
def test_bounds(current: int | None, desired: int, fragment: str) -> None:
    result = evaluate_gate(
        request(current_replicas=current, desired_replicas=desired), rule=RULE, context=context()
    )
    assert refused_by(result) == "bounds"
    assert fragment in result.reason


def test_missing_or_stale_inputs_refuse() -> None:
    stale = {"cpu": InputValue(value=91.0, observed_at=NOW - timedelta(minutes=3))}
    assert (
        refused_by(evaluate_gate(request(inputs=stale), rule=RULE, context=context())) == "inputs"
    )
    missing = {"cpu": InputValue(value=None, observed_at=None)}
    result = evaluate_gate(request(inputs=missing), rule=RULE, context=context())
    assert refused_by(result) == "inputs"
    assert "cpu" in result.reason


def test_followers_never_act() -> None:
    result = evaluate_gate(request(), rule=RULE, context=context(is_leader=False))
    assert refused_by(result) == "leader"


def test_dry_run_and_approval_modes() -> None:
    dry = ActionRule(action="scale_out", mode="dry-run")
    assert evaluate_gate(request(), rule=dry, context=context()).outcome == "dry-run"
    approval = ActionRule(action="scale_out", mode="approval")
    assert evaluate_gate(request(), rule=approval, context=context()).outcome == "await-approval"
