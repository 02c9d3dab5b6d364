"""Choosing the Patroni member to promote: the smallest lag within the tier's RPO, a
synchronous standby counting as zero, refused with a reason otherwise (unless forced)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.failover.driver import Member
from controlplane.failover.plan import choose_member

pytestmark = pytest.mark.unit

RPO = timedelta(minutes=5)


def member(
    name: str,
    *,
    role: str = "replica",
    state: str = "streaming",
    lag: int | None = None,
    nofailover: bool = False,
) -> Member:
    return Member(name=name, role=role, state=state, lag_bytes=lag, nofailover=nofailover)


def test_the_synchronous_standby_wins_over_a_closer_asynchronous_one() -> None:
    choice = choose_member(
        [
            member("m1", role="leader", state="running"),
            member("m2", lag=4096),
            member("m3", role="sync_standby", lag=8192),
        ],
        lag_times={"m2": timedelta(seconds=1), "m3": timedelta(seconds=30)},
        rpo=RPO,
    )
    assert choice.allowed
    assert choice.candidate is not None
    assert (choice.candidate.name, choice.candidate.lag_time) == ("m3", timedelta(0))
    assert choice.excluded == {"m1": "the leader"}


def test_among_asynchronous_replicas_the_fewest_bytes_behind_wins() -> None:
    choice = choose_member(
        [member("far", lag=10_000), member("near", lag=200)],
        lag_times={"far": timedelta(seconds=2), "near": timedelta(seconds=3)},
        rpo=RPO,
    )
    assert choice.candidate is not None
    assert choice.candidate.name == "near"
    assert [c.name for c in choice.considered] == ["far", "near"]


def test_a_lag_over_the_rpo_is_refused_with_the_reason_unless_forced() -> None:
    members = [member("m2", lag=50_000_000)]
    lags = {"m2": timedelta(minutes=6)}
    refused = choose_member(members, lag_times=lags, rpo=RPO)
    assert not refused.allowed
    assert refused.refused == (
        "m2: lag 360.0 s exceeds the RPO budget of 300 s; promote only with --force"
    )
    forced = choose_member(members, lag_times=lags, rpo=RPO, force=True)
    assert forced.allowed
    assert forced.evidence()["forced"] is True


def test_an_unknown_time_lag_is_refused_but_zero_bytes_behind_is_zero() -> None:
    unknown = choose_member([member("m2", lag=4096)], lag_times={}, rpo=RPO)
    assert unknown.refused is not None
    assert unknown.refused.startswith("m2: lag unknown")
    caught_up = choose_member([member("m2", lag=0)], lag_times={}, rpo=RPO)
    assert caught_up.allowed


def test_the_lost_leader_stopped_and_nofailover_members_are_never_candidates() -> None:
    choice = choose_member(
        [
            member("old", role="replica", state="running", lag=0),
            member("down", state="stopped"),
            member("tagged", lag=0, nofailover=True),
        ],
        lag_times={},
        rpo=RPO,
        leader="old",
    )
    assert choice.candidate is None
    assert choice.refused == (
        "no member can be promoted: old: the leader; down: PostgreSQL stopped; "
        "tagged: tagged nofailover"
    )


def test_a_replica_whose_leader_is_gone_runs_and_can_be_promoted() -> None:
    """With the leader gone nothing streams: Patroni reports the replica as running."""
    choice = choose_member(
        [member("m2", role="sync_standby", state="running", lag=0)], lag_times={}, rpo=RPO
    )
    assert choice.allowed
