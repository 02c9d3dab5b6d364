"""Patroni's timing rules, checked before a configuration is ever written."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from controlplane.core.specs import load_spec_paths
from controlplane.stack.patroni import (
    CRITICAL_AVAILABILITY_OBJECTIVE,
    CRITICAL_RTO,
    FAST_TIMING,
    PATRONI_DEFAULT_TIMING,
    PatroniTiming,
    page_free_outage_s,
    timing_for_rto,
    timing_for_tier,
    worst_failover_s,
)
from controlplane.targets.policy import load_dr_policy

SLO_SPECS = Path(__file__).resolve().parents[3] / "slo" / "specs"


def test_the_stack_timing_and_patronis_defaults_follow_patronis_rules() -> None:
    assert FAST_TIMING.loop_wait + 2 * FAST_TIMING.retry_timeout <= FAST_TIMING.ttl
    assert PATRONI_DEFAULT_TIMING.as_dcs() == {
        "ttl": 30,
        "loop_wait": 10,
        "retry_timeout": 10,
        "primary_start_timeout": 300,
    }


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"ttl": 19}, "ttl 19 < 20"),
        ({"loop_wait": 0}, "loop_wait 0 < 1"),
        ({"retry_timeout": 2}, "retry_timeout 2 < 3"),
        ({"ttl": 20, "loop_wait": 10, "retry_timeout": 6}, "= 22 > ttl 20"),
        ({"primary_start_timeout": -1}, "primary_start_timeout -1 < 0"),
    ],
)
def test_timing_outside_patronis_rules_is_refused_with_the_rule(
    options: dict[str, int], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        PatroniTiming(**options)


def test_every_failover_budget_gets_a_timing_whose_worst_failure_fits_in_it() -> None:
    for tenths in range(220, 4000, 7):
        budget = tenths / 10
        for synchronous in (True, False):
            timing = timing_for_rto(budget, synchronous=synchronous)
            assert worst_failover_s(timing) <= budget, (budget, synchronous, timing)


def test_a_budget_below_patronis_shortest_lease_is_refused_with_the_reason() -> None:
    assert timing_for_rto(22).ttl == 20
    with pytest.raises(ValueError, match=r"within 21.9 s: .* lease \(at least 20 s\)"):
        timing_for_rto(21.9)


def test_the_lease_grows_with_the_budget_up_to_patronis_and_then_the_defaults_take_over() -> None:
    assert timing_for_rto(25) == PatroniTiming(
        ttl=23, loop_wait=1, retry_timeout=11, primary_start_timeout=0
    )
    assert timing_for_rto(60).ttl == 30
    assert timing_for_rto(321).loop_wait == 1  # a crash must still fail over within it
    assert timing_for_rto(322) == PATRONI_DEFAULT_TIMING
    assert timing_for_rto(3600) == PATRONI_DEFAULT_TIMING


def test_without_synchronous_replication_a_crashed_primary_restarts_in_place() -> None:
    # A failover could lose acknowledged writes: crash recovery gets what the budget leaves.
    synchronous = timing_for_rto(60)
    asynchronous = timing_for_rto(60, synchronous=False)
    assert synchronous.primary_start_timeout == 0
    assert asynchronous.primary_start_timeout == 56
    assert worst_failover_s(asynchronous) == 60


def test_an_outage_under_half_the_fast_page_threshold_does_not_page() -> None:
    # 99.9 % over 30 days: the 1 h / 5 min page fires at 2 % of 43.2 min = 51.84 s of errors.
    assert page_free_outage_s(0.999) == pytest.approx(25.92)
    assert page_free_outage_s(0.99) == pytest.approx(259.2)
    assert page_free_outage_s(0.999, period=timedelta(days=28)) == pytest.approx(24.192)


def test_the_stack_runs_the_critical_tiers_timing_as_the_policy_files_set_it() -> None:
    policy = load_dr_policy()
    inventory = next(db for db in policy.spec.databases if db.name == "inventory")
    assert inventory.tier == "critical"
    assert policy.spec.tiers["critical"].rto == CRITICAL_RTO
    critical = [s for s in load_spec_paths([SLO_SPECS]) if s.tier == "critical"]
    tightest = max(critical, key=lambda s: s.target)
    assert (tightest.target, tightest.window.duration) == (
        CRITICAL_AVAILABILITY_OBJECTIVE,
        timedelta(days=30),
    )
    critical_timing = timing_for_tier(
        rto=CRITICAL_RTO, availability_objective=CRITICAL_AVAILABILITY_OBJECTIVE
    )
    assert critical_timing == FAST_TIMING
    assert worst_failover_s(FAST_TIMING) <= page_free_outage_s(CRITICAL_AVAILABILITY_OBJECTIVE)
    # The other tiers' RTOs (1 h and more) are met by Patroni's defaults.
    for tier in ("standard", "batch", "reporting"):
        assert timing_for_tier(rto=policy.spec.tiers[tier].rto) == PATRONI_DEFAULT_TIMING
