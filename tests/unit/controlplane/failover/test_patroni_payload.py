"""Reading Patroni's GET /cluster answer (the shape Patroni 4 sends)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.failover.driver import DriverError
from controlplane.failover.patroni import PatroniDriver, parse_cluster

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, tzinfo=UTC)

ANSWER = {
    "members": [
        {
            "name": "member-1",
            "role": "replica",
            "state": "stopped",
            "api_url": "http://127.0.0.1:8008/patroni",
            "host": "127.0.0.1",
            "port": 5432,
            "lag": "unknown",
            "receive_lag": "unknown",
            "tags": {"nofailover": True},
        },
        {
            "name": "member-2",
            "role": "leader",
            "state": "running",
            "api_url": "http://127.0.0.1:8009/patroni",
            "host": "127.0.0.1",
            "port": 5433,
            "timeline": 3,
        },
    ],
    "pause": True,
    "scope": "inventory",
}


def test_members_roles_lag_and_pause() -> None:
    state = parse_cluster(ANSWER, source="http://127.0.0.1:8009", observed_at=AT)
    assert state.paused
    assert state.leader is not None
    assert (state.leader.name, state.leader.timeline) == ("member-2", 3)
    (old,) = state.replicas
    assert (old.state, old.lag_bytes, old.timeline, old.nofailover) == (
        "stopped",
        None,
        None,
        True,
    )
    assert not old.streaming
    assert [n.port for n in state.nodes()] == [5432, 5433]


def test_a_leader_whose_postgresql_is_down_is_no_leader() -> None:
    body = {"members": [{"name": "member-2", "role": "leader", "state": "stopped"}]}
    assert parse_cluster(body, source="x", observed_at=AT).leader is None


def test_an_unreadable_answer_names_the_field() -> None:
    with pytest.raises(DriverError, match=r"members\.0\.name"):
        parse_cluster({"members": [{"role": "leader"}]}, source="x", observed_at=AT)


def test_a_driver_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="at least one REST API URL"):
        PatroniDriver(urls=[])
