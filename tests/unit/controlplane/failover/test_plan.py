from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.failover.nodes import Node, NodeStatus, ReplicationSample, lsn_to_int
from controlplane.failover.plan import choose_candidate

pytestmark = pytest.mark.unit

RPO = timedelta(minutes=5)


def standby(name: str, *, wal: int | None, in_recovery: bool = True) -> NodeStatus:
    return NodeStatus(
        node=Node(name=name, host="127.0.0.1", port=5433),
        in_recovery=in_recovery,
        wal_lsn=wal,
        replay_lsn=wal,
        streaming=False,
    )


def sample(name: str, *, lag: timedelta | None, sync: str = "async") -> ReplicationSample:
    return ReplicationSample(
        name=name, sent_lsn=None, flush_lsn=None, replay_lag=lag, sync_state=sync
    )


def test_lsn_text_to_bytes() -> None:
    assert lsn_to_int("0/3000060") == 0x3000060
    assert lsn_to_int("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert lsn_to_int(None) is None


def test_picks_the_standby_with_the_most_wal_and_reports_its_byte_lag() -> None:
    choice = choose_candidate(
        [standby("a", wal=1000), standby("b", wal=1800)],
        last_primary_lsn=2000,
        last_samples={
            "a": sample("a", lag=timedelta(seconds=3)),
            "b": sample("b", lag=timedelta(seconds=1)),
        },
        rpo=RPO,
    )
    assert choice.allowed
    assert choice.candidate is not None
    assert choice.candidate.status.node.name == "b"
    assert choice.candidate.lag_bytes == 200


def test_a_synchronous_standby_wins_and_counts_as_zero_lag() -> None:
    choice = choose_candidate(
        [standby("async", wal=5000), standby("sync", wal=4000)],
        last_primary_lsn=5000,
        last_samples={
            "async": sample("async", lag=timedelta(minutes=10)),
            "sync": sample("sync", lag=None, sync="sync"),
        },
        rpo=RPO,
    )
    assert choice.allowed
    assert choice.candidate is not None
    assert choice.candidate.status.node.name == "sync"
    assert choice.candidate.lag_time == timedelta(0)


def test_lag_over_the_rpo_is_refused_unless_forced() -> None:
    args = {
        "last_primary_lsn": 9000,
        "last_samples": {"a": sample("a", lag=timedelta(minutes=6))},
        "rpo": RPO,
    }
    refused = choose_candidate([standby("a", wal=1000)], **args)  # type: ignore[arg-type]
    assert not refused.allowed
    assert refused.refused is not None
    assert "exceeds the RPO budget of 300 s" in refused.refused
    forced = choose_candidate([standby("a", wal=1000)], force=True, **args)  # type: ignore[arg-type]
    assert forced.allowed


def test_unknown_lag_is_refused_but_zero_bytes_behind_is_known() -> None:
    unknown = choose_candidate(
        [standby("a", wal=1000)], last_primary_lsn=None, last_samples={}, rpo=RPO
    )
    assert not unknown.allowed
    assert unknown.refused is not None
    assert "lag unknown" in unknown.refused
    caught_up = choose_candidate(
        [standby("a", wal=1000)], last_primary_lsn=1000, last_samples={}, rpo=RPO
    )
    assert caught_up.allowed


def test_no_standby_or_only_primaries_means_nothing_to_promote() -> None:
    assert choose_candidate([], last_primary_lsn=1, last_samples={}, rpo=RPO).refused == (
        "no reachable standby to promote"
    )
    primary_only = choose_candidate(
        [standby("x", wal=10, in_recovery=False)], last_primary_lsn=1, last_samples={}, rpo=RPO
    )
    assert primary_only.candidate is None
