"""Replica recommendation: the Kubernetes HPA algorithm, plus SLO burn as an input (pure, no I/O).

For each signal ``desired = ceil(current × value / target)``, skipped while
``|value / target − 1| ≤ tolerance`` (0.1, like the HPA). Utilisation signals may raise or lower
the count; SLO burn signals only raise it (a budget burning faster than ``target`` means users
are hurt now, even if CPU is under its target; a quiet budget says nothing about spare capacity).
The proposal is the maximum over signals, then:

1. **Stabilisation** — scale-up takes the *lowest* proposal of the last ``up.window``; scale-down
   the *highest* proposal of the last ``down.window`` (300 s by default), so a brief dip never
   removes capacity.
2. **Rate policies** per direction: ``Pods`` (±n per period) or ``Percent`` (±p % per period),
   measured from the replica count at the start of each period (from the recent scale events);
   ``select`` picks the policy allowing the most (``max``) or least (``min``) change, or
   ``disabled`` forbids that direction. Defaults are the HPA's: up max(4 pods, 100 %) per 15 s,
   down 100 % per 15 s.
3. **Bounds** ``[min_replicas, max_replicas]``.

Missing or stale inputs: hold. A recommendation never scales in while any signal is missing or
stale, and never scales out on a missing signal; the reason says which input was missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

SignalKind = Literal["utilization", "slo_burn"]
PolicyKind = Literal["Pods", "Percent"]
Select = Literal["max", "min", "disabled"]


@dataclass(frozen=True, kw_only=True)
class Signal:
    """One input: ``value`` against ``target`` (e.g. CPU 85 % vs 70 %, burn 20× vs 14.4×)."""

    name: str
    kind: SignalKind
    value: float | None
    target: float
    observed_at: datetime | None

    def __post_init__(self) -> None:
        if self.target <= 0:
            raise ValueError(f"{self.name}: target must be positive, got {self.target}")


@dataclass(frozen=True, kw_only=True)
class RatePolicy:
    kind: PolicyKind
    value: int
    period: timedelta

    def __post_init__(self) -> None:
        if self.value <= 0 or self.period <= timedelta(0):
            raise ValueError("a rate policy needs a positive value and period")


@dataclass(frozen=True, kw_only=True)
class Behavior:
    window: timedelta
    policies: tuple[RatePolicy, ...]
    select: Select = "max"


def default_up() -> Behavior:
    return Behavior(
        window=timedelta(0),
        policies=(
            RatePolicy(kind="Pods", value=4, period=timedelta(seconds=15)),
            RatePolicy(kind="Percent", value=100, period=timedelta(seconds=15)),
        ),
    )


def default_down() -> Behavior:
    return Behavior(
        window=timedelta(minutes=5),
        policies=(RatePolicy(kind="Percent", value=100, period=timedelta(seconds=15)),),
    )


@dataclass(frozen=True, kw_only=True)
class ScalingSpec:
    min_replicas: int
    max_replicas: int
    tolerance: float = 0.1
    max_age: timedelta = timedelta(minutes=2)
    up: Behavior = field(default_factory=default_up)
    down: Behavior = field(default_factory=default_down)

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"need 1 <= min_replicas <= max_replicas, got {self.min_replicas}, "
                f"{self.max_replicas}"
            )


@dataclass(frozen=True, kw_only=True)
class Proposal:
    at: datetime
    replicas: int


@dataclass(frozen=True, kw_only=True)
class ScaleEvent:
    at: datetime
    old: int
    new: int


@dataclass(frozen=True, kw_only=True)
class Recommendation:
    current: int
    #: What the signals ask for before stabilisation, rate policies and bounds.
    proposed: int
    desired: int
    reason: str
    #: Which step capped the change: "stabilization", "policy", "bounds", "hold" or None.
    limited_by: str | None
    per_signal: dict[str, int | None]

    @property
    def change(self) -> int:
        return self.desired - self.current


def _fresh(signal: Signal, now: datetime, max_age: timedelta) -> bool:
    return (
        signal.value is not None
        and math.isfinite(signal.value)
        and signal.observed_at is not None
        and now - signal.observed_at <= max_age
    )


def _proposal(signal: Signal, current: int, tolerance: float) -> int:
    assert signal.value is not None
    ratio = signal.value / signal.target
    if abs(ratio - 1) <= tolerance:
        return current
    desired = math.ceil(current * ratio - 1e-9)
    if signal.kind == "slo_burn":
        return max(current, desired)
    return max(desired, 1 if current > 0 else 0)


def _policy_limit(
    behavior: Behavior, *, current: int, events: Sequence[ScaleEvent], now: datetime, up: bool
) -> int | None:
    if behavior.select == "disabled":
        return current
    limits: list[int] = []
    for policy in behavior.policies:
        recent = [e for e in events if now - e.at < policy.period]
        if up:
            start = current - sum(max(0, e.new - e.old) for e in recent)
            limit = (
                start + policy.value
                if policy.kind == "Pods"
                else math.ceil(start * (1 + policy.value / 100))
            )
        else:
            start = current + sum(max(0, e.old - e.new) for e in recent)
            limit = (
                start - policy.value
                if policy.kind == "Pods"
                else math.ceil(start * (1 - policy.value / 100))
            )
        limits.append(limit)
    if not limits:
        return None
    if up:
        return max(limits) if behavior.select == "max" else min(limits)
    return min(limits) if behavior.select == "max" else max(limits)


def recommend(
    *,
    spec: ScalingSpec,
    current: int,
    signals: Sequence[Signal],
    now: datetime,
    history: Sequence[Proposal] = (),
    events: Sequence[ScaleEvent] = (),
) -> Recommendation:
    """The replica count to run now. ``history`` holds earlier proposals (for stabilisation),
    ``events`` earlier scale changes (for the rate policies); both may include older entries."""
    if not signals:
        raise ValueError("at least one signal is needed")
    per_signal: dict[str, int | None] = {}
    missing: list[str] = []
    for signal in signals:
        if _fresh(signal, now, spec.max_age):
            per_signal[signal.name] = _proposal(signal, current, spec.tolerance)
        else:
            per_signal[signal.name] = None
            missing.append(signal.name)
    present = [p for p in per_signal.values() if p is not None]
    proposed = max(present) if present else current
    if missing and proposed <= current:
        state = "missing" if len(missing) == len(signals) else "missing or stale"
        return Recommendation(
            current=current,
            proposed=current,
            desired=current,
            reason=f"hold: {state} input(s) {', '.join(missing)}; never scale in blind",
            limited_by="hold",
            per_signal=per_signal,
        )

    desired = proposed
    limited_by: str | None = None
    reason = f"signals propose {proposed} (current {current})"
    if proposed > current and spec.up.window > timedelta(0):
        window = [p.replicas for p in history if now - p.at <= spec.up.window] + [proposed]
        stabilized = max(current, min(window))
        if stabilized < desired:
            desired, limited_by = stabilized, "stabilization"
    elif proposed < current:
        window = [p.replicas for p in history if now - p.at <= spec.down.window] + [proposed]
        stabilized = min(current, max(window))
        if stabilized > desired:
            desired, limited_by = stabilized, "stabilization"

    if desired > current:
        limit = _policy_limit(spec.up, current=current, events=events, now=now, up=True)
        if limit is not None and desired > limit:
            desired, limited_by = max(current, limit), "policy"
    elif desired < current:
        limit = _policy_limit(spec.down, current=current, events=events, now=now, up=False)
        if limit is not None and desired < limit:
            desired, limited_by = min(current, limit), "policy"

    bounded = min(max(desired, spec.min_replicas), spec.max_replicas)
    if bounded != desired:
        desired, limited_by = bounded, "bounds"
    if desired > current:
        drivers = [
            name for name, value in per_signal.items() if value is not None and value > current
        ]
        reason = f"scale out {current} → {desired}: {', '.join(drivers)} above target"
    elif desired < current:
        reason = f"scale in {current} → {desired}: every signal below target"
    elif limited_by is not None:
        reason = f"hold at {current}: {reason}, limited by {limited_by}"
    else:
        reason = f"hold at {current}: within tolerance"
    if missing:
        reason += f" (stale or missing: {', '.join(missing)})"
    return Recommendation(
        current=current,
        proposed=proposed,
        desired=desired,
        reason=reason,
        limited_by=limited_by,
        per_signal=per_signal,
    )
