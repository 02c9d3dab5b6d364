"""Leader election on the real PostgreSQL: a lease with an expiry, the fencing counter, and the
holder's advisory lock that shows a dead holder at once.

In process (deterministic steps) and as two real control plane processes, one of which is
killed with SIGKILL or frozen with SIGSTOP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from controlplane.core.security import Role
from controlplane.leader import LeaseElector, PostgresLease
from controlplane.store.audit import AuditDecision, list_audit, record_decision
from controlplane.store.database import Database
from controlplane.store.errors import FencingTokenStale
from controlplane.store.leases import read_lease
from controlplane.store.tokens import create_token
from tests.integration.controlplane.conftest import sqlalchemy_url
from tests.integration.controlplane.processes import ControlPlaneProcess, leader_view

TAKEOVER_LIMIT_SECONDS = 15.0


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[Database]:
    database = Database.from_url(sqlalchemy_url(pg_url))
    database.migrate()
    yield database
    database.dispose()


def _elector(database: Database, replica: str, *, ttl: float = 30.0) -> LeaseElector:
    return LeaseElector(
        store=PostgresLease(database=database, lock_key=424242, replica_id=replica),
        name="controlplane",
        replica_id=replica,
        ttl=ttl,
        check_interval=0.2,
        acquire_interval=0.2,
    )


def _decision(*, actor: str, token: int | None) -> AuditDecision:
    return AuditDecision(
        at=datetime.now(UTC),
        actor=actor,
        action="scale",
        target="deployment/inventory",
        decision="taken",
        fencing_token=token,
    )


def test_exactly_one_leads_and_a_lost_connection_hands_over_with_a_higher_token(
    pg_database: Database, pg_url: str
) -> None:
    a, b = _elector(pg_database, "replica-a"), _elector(pg_database, "replica-b")
    try:
        first = [a.step(), b.step()]
        assert [status.is_leader for status in first] == [True, False]
        assert first[1].lease_holder == "replica-a"
        old_token = first[0].fencing_token
        assert old_token is not None
        for _ in range(3):  # stable: the leader stays, the follower follows
            assert a.step().is_leader
            assert not b.step().is_leader

        # The leader's election session dies (network cut, server-side kill...): its advisory
        # lock goes with it, so the follower takes over at once, not after the 30 s lease.
        with psycopg.connect(pg_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'controlplane-leader:replica-a'"
            ).fetchall()
        assert killed == [(True,)]
        taken = b.step()
        assert taken.is_leader
        assert taken.fencing_token is not None
        assert taken.fencing_token > old_token
        assert a.step().last_error is not None  # its connection is gone: retried next round
        assert not a.step().is_leader  # reconnected, its renewal is refused: it steps down
        assert not a.step().is_leader  # and cannot come back while b holds the lease
        assert b.step().is_leader

        # A write carrying the old token is refused; the new leader's goes through.
        with pytest.raises(FencingTokenStale), pg_database.writer() as session:
            record_decision(
                session,
                decision=_decision(actor="replica-a", token=old_token),
                lease_name="controlplane",
            )
        with pg_database.writer() as session:
            record_decision(
                session,
                decision=_decision(actor="replica-b", token=taken.fencing_token),
                lease_name="controlplane",
            )
        with pg_database.reader() as session:
            assert [entry.actor for entry in list_audit(session)] == ["replica-b"]
    finally:
        a.stop()
        b.stop()


def test_a_leader_that_stops_releases_the_lease_at_once(pg_database: Database) -> None:
    a, b = _elector(pg_database, "replica-a"), _elector(pg_database, "replica-b")
    try:
        assert a.step().is_leader
        assert not b.step().is_leader
        a.stop()
        assert b.step().is_leader
        with pg_database.reader() as session:
            lease = read_lease(session, name="controlplane")
        assert lease is not None
        assert (lease.holder, lease.fencing_token) == ("replica-b", 2)
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("fault", ["sigkill", "sigstop"])
def test_two_control_planes_one_leader_kill_or_freeze_it_and_the_other_leads_within_15_s(
    fault: str, pg_url: str, pg_database: Database, tmp_path: Path
) -> None:
    """Killed: its session ends, the follower takes over at once. Frozen: its session lives on
    (the lock with it) and only the lease's expiry frees it; once thawed it does not lead, and
    its token is refused."""
    with pg_database.writer() as session:
        _, secret = create_token(session, name="probe", role=Role.VIEWER, at=datetime.now(UTC))
    headers = {"Authorization": f"Bearer {secret}"}
    processes = {
        name: ControlPlaneProcess(
            settings={
                "database_url": pg_url,
                "data_dir": str(tmp_path / name),
                "webhook_token": "unused",
                "replica_id": name,
                "leader_acquire_interval_seconds": "1",
                "leader_check_interval_seconds": "1",
            },
            log_path=tmp_path / f"{name}.log",
        )
        for name in ("replica-a", "replica-b")
    }
    try:
        for process in processes.values():
            process.start()

        def views() -> dict[str, dict[str, Any] | None]:
            return {name: leader_view(process.url, headers) for name, process in processes.items()}

        deadline = time.monotonic() + TAKEOVER_LIMIT_SECONDS
        seen = views()
        while time.monotonic() < deadline:
            seen = views()
            if all(view is not None for view in seen.values()) and any(
                view["is_leader"] for view in seen.values() if view
            ):
                break
            time.sleep(0.2)
        # Watch for a few seconds: always exactly one leader, the same one.
        leaders = set()
        for _ in range(10):
            seen = views()
            current = [name for name, view in seen.items() if view and view["is_leader"]]
            assert len(current) == 1, seen
            leaders.add(current[0])
            time.sleep(0.2)
        assert len(leaders) == 1
        (leader,) = leaders
        (follower,) = set(processes) - leaders
        leading_view = seen[leader]
        follower_view = seen[follower]
        assert leading_view is not None
        assert follower_view is not None
        old_token = leading_view["fencing_token"]
        assert follower_view["lease_holder"] == leader
        assert follower_view["lease_token"] == old_token
        assert follower_view["fencing_token"] is None

        if fault == "sigkill":
            processes[leader].kill()
        else:
            processes[leader].freeze()
        faulted_at = time.monotonic()
        new_view = None
        while time.monotonic() - faulted_at < TAKEOVER_LIMIT_SECONDS:
            new_view = leader_view(processes[follower].url, headers)
            if new_view and new_view["is_leader"]:
                break
            time.sleep(0.1)
        took = time.monotonic() - faulted_at
        assert new_view is not None
        assert new_view["is_leader"], f"no takeover within {TAKEOVER_LIMIT_SECONDS} s: {new_view}"
        assert took < TAKEOVER_LIMIT_SECONDS
        assert new_view["fencing_token"] > old_token
        # The follower still served the API while it followed, and serves it now.
        assert (
            httpx.get(
                f"{processes[follower].url}/api/v1/slos", headers=headers, timeout=5
            ).status_code
            == 200
        )
        if fault == "sigstop":
            processes[leader].thaw()
            for _ in range(10):  # from its first answer on, the old leader never claims to lead
                old_view = leader_view(processes[leader].url, headers)
                assert old_view is not None
                assert not old_view["is_leader"], old_view
                time.sleep(0.2)
            assert old_view["lease_holder"] == follower
        # Whatever the old leader still tries to write under its token is refused.
        with pytest.raises(FencingTokenStale), pg_database.writer() as session:
            record_decision(
                session,
                decision=_decision(actor=leader, token=old_token),
                lease_name="controlplane",
            )
    finally:
        for process in processes.values():
            process.stop()
