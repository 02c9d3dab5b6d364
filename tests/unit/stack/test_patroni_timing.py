"""Patroni's timing rules, checked before a configuration is ever written."""

from __future__ import annotations

import pytest

from controlplane.stack.patroni import FAST_TIMING, PATRONI_DEFAULT_TIMING, PatroniTiming


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
