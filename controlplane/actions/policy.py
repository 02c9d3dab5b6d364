"""The versioned action policy file (``controlplane/policies/actions.yaml``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from controlplane.actions.gate import ActionKind, ActionRule, Mode, RateBudget
from controlplane.core.config import DEFAULT_ACTION_POLICY
from controlplane.core.validation import Duration, Window
from controlplane.targets.policy import load_policy_file


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlertTrigger(_Strict):
    names: tuple[str, ...] = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        return name in self.names and all(labels.get(k) == v for k, v in self.labels.items())


class BurnTrigger(_Strict):
    """An SLO burning faster than ``above`` over ``window`` (read from Prometheus each tick):
    ``above: 14.4`` over a short window is the page tier of a 30-day SLO, caught minutes before
    the multi-window alert fires."""

    slo: str
    window: Window = "30s"
    above: float = Field(default=14.4, gt=0)


class Trigger(_Strict):
    """Exactly one of: an alert (by name and labels) or an SLO burn tier."""

    alert: AlertTrigger | None = None
    burn: BurnTrigger | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        if (self.alert is None) == (self.burn is None):
            raise ValueError("a trigger needs exactly one of alert or burn")
        return self


class Rule(_Strict):
    name: str
    trigger: Trigger
    action: ActionKind
    service: str


class Budget(_Strict):
    capacity: int = Field(ge=1)
    per_hour: float = Field(gt=0)


class ActionSpec(_Strict):
    mode: Mode = "enforce"
    allowed: bool = True
    cooldown: Duration = timedelta(minutes=5)
    budget: Budget = Budget(capacity=3, per_hour=6)
    max_step: int | None = Field(default=None, ge=1)
    max_input_age: Duration = timedelta(minutes=2)


class BurnSignal(_Strict):
    slo: str
    window: Window = "30s"
    target: float = Field(default=14.4, gt=0)


class ServiceScaling(_Strict):
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    burn_signals: tuple[BurnSignal, ...] = ()
    verify_after: Duration = timedelta(minutes=2)
    #: How long every burn signal must stay at or under its target before the engine gives back
    #: what its scale-outs added (the HPA's default downscale stabilisation: a brief lull in a
    #: burn never removes capacity).
    scale_in_after: Duration = timedelta(minutes=5)


class PolicySpec(_Strict):
    global_cap_per_hour: int = Field(default=20, ge=1)
    rules: tuple[Rule, ...] = ()
    actions: dict[ActionKind, ActionSpec] = Field(default_factory=dict)
    scaling: dict[str, ServiceScaling] = Field(default_factory=dict)


class Metadata(_Strict):
    name: str
    version: int = Field(ge=1)


class ActionPolicy(_Strict):
    api_version: Literal["controlplane/v1"] = Field(alias="apiVersion")
    kind: Literal["ActionPolicy"]
    metadata: Metadata
    spec: PolicySpec

    def rule_for(self, action: ActionKind, service: str) -> ActionRule | None:
        """The gate's view of one action for one service (None: the policy does not allow it)."""
        spec = self.spec.actions.get(action)
        if spec is None:
            return None
        scaling = self.spec.scaling.get(service)
        return ActionRule(
            action=action,
            allowed=spec.allowed,
            cooldown=spec.cooldown,
            budget=RateBudget(capacity=spec.budget.capacity, per_hour=spec.budget.per_hour),
            min_replicas=None if scaling is None else scaling.min_replicas,
            max_replicas=None if scaling is None else scaling.max_replicas,
            max_step=spec.max_step,
            max_input_age=spec.max_input_age,
            mode=spec.mode,
        )

    def with_mode(self, action: ActionKind, mode: Mode) -> ActionPolicy:
        """A copy with one action's mode changed (operators switch to dry-run or approval)."""
        actions = dict(self.spec.actions)
        current = actions.get(action, ActionSpec())
        actions[action] = current.model_copy(update={"mode": mode})
        return self.model_copy(update={"spec": self.spec.model_copy(update={"actions": actions})})


def load_action_policy(path: Path = DEFAULT_ACTION_POLICY) -> ActionPolicy:
    return load_policy_file(path, ActionPolicy)
