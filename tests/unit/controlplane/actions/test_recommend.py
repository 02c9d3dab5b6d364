from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.actions.recommend import (
    Behavior,
    Proposal,
    RatePolicy,
    ScaleEvent,
    ScalingSpec,
    Signal,
    recommend,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SPEC = ScalingSpec(min_replicas=3, max_replicas=20)


def cpu(value: float | None, *, age: timedelta = timedelta(seconds=10)) -> Signal:
    return Signal(name="cpu", kind="utilization", value=value, target=70, observed_at=NOW - age)


def burn(value: float | None, *, age: timedelta = timedelta(seconds=10)) -> Signal:
    return Signal(
        name="read-latency burn 5m",
        kind="slo_burn",
        value=value,
        target=14.4,
        observed_at=NOW - age,
    )


def test_ratio_rule_like_the_hpa() -> None:
    # ceil(4 × 140 / 70) = 8
    rec = recommend(spec=SPEC, current=4, signals=[cpu(140)], now=NOW)
    assert (rec.proposed, rec.desired) == (8, 8)
    assert rec.reason.startswith("scale out 4 → 8")


def test_within_tolerance_nothing_changes() -> None:
    assert recommend(spec=SPEC, current=10, signals=[cpu(76)], now=NOW).desired == 10  # 1.086
    assert recommend(spec=SPEC, current=10, signals=[cpu(64)], now=NOW).desired == 10  # 0.914
    assert recommend(spec=SPEC, current=10, signals=[cpu(78)], now=NOW).desired == 12  # 1.114


def test_fast_latency_burn_scales_out_even_with_cpu_under_target() -> None:
    rec = recommend(spec=SPEC, current=4, signals=[cpu(35), burn(28.8)], now=NOW)
    assert rec.per_signal == {"cpu": 2, "read-latency burn 5m": 8}
    assert rec.desired == 8
    assert "read-latency burn 5m" in rec.reason


def test_a_quiet_budget_never_scales_in_by_itself() -> None:
    rec = recommend(spec=SPEC, current=6, signals=[burn(0.1)], now=NOW)
    assert rec.desired == 6


def test_missing_or_stale_inputs_hold_and_never_scale_in() -> None:
    rec = recommend(spec=SPEC, current=8, signals=[cpu(None)], now=NOW)
    assert (rec.desired, rec.limited_by) == (8, "hold")
    assert "never scale in blind" in rec.reason
    stale = recommend(spec=SPEC, current=8, signals=[cpu(10, age=timedelta(minutes=5))], now=NOW)
    assert stale.desired == 8
    # CPU far below target but the burn signal is missing: still no scale-in.
    partial = recommend(spec=SPEC, current=8, signals=[cpu(10), burn(None)], now=NOW)
    assert partial.desired == 8
    assert partial.limited_by == "hold"


def test_scale_out_from_a_present_signal_goes_ahead_when_another_is_missing() -> None:
    rec = recommend(spec=SPEC, current=4, signals=[cpu(None), burn(28.8)], now=NOW)
    assert rec.desired == 8
    assert "stale or missing: cpu" in rec.reason


def test_scale_down_stabilisation_keeps_the_highest_recent_proposal() -> None:
    history = [
        Proposal(at=NOW - timedelta(minutes=4), replicas=10),
        Proposal(at=NOW - timedelta(minutes=2), replicas=7),
        Proposal(at=NOW - timedelta(minutes=6), replicas=12),  # outside the 5-minute window
    ]
    rec = recommend(spec=SPEC, current=10, signals=[cpu(35)], now=NOW, history=history)
    assert rec.proposed == 5
    assert (rec.desired, rec.limited_by) == (10, "stabilization")
    later = [Proposal(at=NOW - timedelta(minutes=2), replicas=7)]
    assert recommend(spec=SPEC, current=10, signals=[cpu(35)], now=NOW, history=later).desired == 7


def test_scale_up_policies_max_of_4_pods_or_100_percent_per_15_s() -> None:
    # 2 → ceil(2 × 700/70) = 20, but at most max(2 + 4, 2 × 2) = 6
    spec = ScalingSpec(min_replicas=1, max_replicas=50)
    rec = recommend(spec=spec, current=2, signals=[cpu(700)], now=NOW)
    assert (rec.proposed, rec.desired, rec.limited_by) == (20, 6, "policy")
    # 10 → 40 proposed; 100 % allows 20
    assert recommend(spec=spec, current=10, signals=[cpu(280)], now=NOW).desired == 20


def test_rate_policies_count_the_changes_already_made_in_the_period() -> None:
    spec = ScalingSpec(
        min_replicas=1,
        max_replicas=50,
        up=Behavior(
            window=timedelta(0),
            policies=(RatePolicy(kind="Pods", value=2, period=timedelta(minutes=1)),),
        ),
    )
    events = [ScaleEvent(at=NOW - timedelta(seconds=30), old=4, new=5)]
    # period start = 5 - 1 = 4, so at most 6 now
    assert recommend(spec=spec, current=5, signals=[cpu(280)], now=NOW, events=events).desired == 6


def test_select_min_and_disabled() -> None:
    policies = (
        RatePolicy(kind="Pods", value=1, period=timedelta(seconds=15)),
        RatePolicy(kind="Percent", value=100, period=timedelta(seconds=15)),
    )
    spec_min = ScalingSpec(
        min_replicas=1,
        max_replicas=50,
        up=Behavior(window=timedelta(0), policies=policies, select="min"),
    )
    assert recommend(spec=spec_min, current=4, signals=[cpu(280)], now=NOW).desired == 5
    spec_off = ScalingSpec(
        min_replicas=1,
        max_replicas=50,
        down=Behavior(window=timedelta(0), policies=policies, select="disabled"),
    )
    assert recommend(spec=spec_off, current=8, signals=[cpu(10)], now=NOW).desired == 8


def test_scale_down_percent_policy_and_bounds() -> None:
    spec = ScalingSpec(
        min_replicas=3,
        max_replicas=20,
        down=Behavior(
            window=timedelta(0),
            policies=(RatePolicy(kind="Percent", value=50, period=timedelta(seconds=15)),),
        ),
    )
    assert recommend(spec=spec, current=16, signals=[cpu(7)], now=NOW).desired == 8  # 50 %
    assert recommend(spec=spec, current=4, signals=[cpu(7)], now=NOW).desired == 3  # min bound
    capped = recommend(spec=SPEC, current=18, signals=[cpu(140)], now=NOW)
    assert (capped.desired, capped.limited_by) == (20, "bounds")


def test_invalid_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="min_replicas"):
        ScalingSpec(min_replicas=5, max_replicas=3)
    with pytest.raises(ValueError, match="target must be positive"):
        Signal(name="x", kind="utilization", value=1, target=0, observed_at=NOW)
