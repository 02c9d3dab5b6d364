"""Leader election on the embedded SQLite store: a file lock plus the fencing counter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.leader import FileLockElector, LeaderStatus, NoLeadership
from controlplane.store.database import Database
from controlplane.store.leases import read_lease


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{tmp_path}/controlplane.db")
    db.migrate()
    yield db
    db.dispose()


def _elector(database: Database, replica: str) -> FileLockElector:
    return FileLockElector(
        database=database,
        name="controlplane",
        replica_id=replica,
        check_interval=0.05,
        acquire_interval=0.05,
    )


def test_one_of_two_replicas_leads_and_the_other_takes_over_with_a_higher_token(
    database: Database,
) -> None:
    first, second = _elector(database, "replica-a"), _elector(database, "replica-b")
    heard: list[tuple[str, bool]] = []
    second.add_listener(lambda status: heard.append((status.replica_id, status.is_leader)))
    try:
        assert first.step().is_leader
        confirmed = first.step()
        assert confirmed.confirmed_at is not None
        assert confirmed.since is not None
        assert confirmed.confirmed_at >= confirmed.since
        assert confirmed.leads(now=confirmed.confirmed_at, max_age=5)
        assert not confirmed.leads(now=confirmed.confirmed_at + timedelta(seconds=6), max_age=5)
        follower = second.step()
        assert not follower.is_leader
        assert follower.lease_holder == "replica-a"
        assert follower.lease_token == first.status().fencing_token
        assert not second.step().is_leader  # still held

        old_token = first.status().fencing_token
        assert old_token is not None
        first.stop()
        assert not first.status().is_leader
        assert not first.status().leads(now=datetime.now(UTC), max_age=60)
        taken = second.step()
        assert taken.is_leader
        assert taken.fencing_token is not None
        assert taken.fencing_token > old_token
        assert heard == [("replica-b", True)]
        with database.reader() as session:
            lease = read_lease(session, name="controlplane")
        assert lease is not None
        assert (lease.holder, lease.fencing_token) == ("replica-b", taken.fencing_token)
    finally:
        first.stop()
        second.stop()


def test_the_background_thread_elects_and_stop_releases(database: Database) -> None:
    elector = _elector(database, "replica-a")
    elector.start()
    try:
        for _ in range(200):
            if elector.status().is_leader:
                break
            time.sleep(0.05)
        assert elector.status().is_leader
    finally:
        elector.stop()
    assert elector.status() == LeaderStatus(
        replica_id="replica-a",
        mode="sqlite-file-lock",
        is_leader=False,
        lease_holder="replica-a",
        lease_token=1,
    )


def test_an_in_memory_store_is_always_its_own_leader() -> None:
    db = Database.from_url("sqlite://")
    db.migrate()
    try:
        elector = _elector(db, "solo")
        assert elector.lock_path is None
        assert elector.step().fencing_token == 1
    finally:
        db.dispose()


def test_disabled_election_never_leads() -> None:
    leadership = NoLeadership(replica_id="api-only")
    leadership.start()
    assert leadership.status().is_leader is False
    assert leadership.status().mode == "disabled"
