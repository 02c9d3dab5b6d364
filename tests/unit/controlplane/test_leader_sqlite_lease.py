"""Leader election on the embedded SQLite store: a lease row with an expiry and the fencing
counter; a dead holder (a process of this machine) is replaced at once, a stalled one when its
lease expires."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.leader import LeaderStatus, LeaseElector, NoLeadership, SQLiteLease
from controlplane.store.audit import AuditDecision, list_audit, record_decision
from controlplane.store.database import Database
from controlplane.store.errors import FencingTokenStale
from controlplane.store.leases import read_lease


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{tmp_path}/controlplane.db")
    db.migrate()
    yield db
    db.dispose()


def _elector(database: Database, replica: str, *, ttl: float = 30.0) -> LeaseElector:
    return LeaseElector(
        store=SQLiteLease(database=database),
        name="controlplane",
        replica_id=replica,
        ttl=ttl,
        check_interval=0.05,
        acquire_interval=0.05,
    )


def _decision(*, actor: str, token: int | None) -> AuditDecision:
    return AuditDecision(
        at=datetime.now(UTC),
        actor=actor,
        action="scale_out",
        target="service/inventory",
        decision="taken",
        fencing_token=token,
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
        assert confirmed.lease_expires_at is not None
        assert confirmed.lease_expires_at > confirmed.confirmed_at + timedelta(seconds=25)
        assert confirmed.leads(now=confirmed.confirmed_at, max_age=5)
        assert not confirmed.leads(now=confirmed.confirmed_at + timedelta(seconds=6), max_age=5)
        follower = second.step()
        assert not follower.is_leader
        assert follower.lease_holder == "replica-a"
        assert follower.lease_token == first.status().fencing_token
        assert not second.step().is_leader  # still held

        old_token = first.status().fencing_token
        assert old_token is not None
        first.stop()  # releases the lease: no wait for its expiry
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


def test_a_stalled_leader_loses_the_lease_at_its_expiry_and_is_fenced(database: Database) -> None:
    """The leader stops renewing (frozen): it stops leading on its own clock, the follower
    takes over once the lease expires (not before), and the old token is refused."""
    ttl = 1.0
    stalled, follower = (
        _elector(database, "replica-a", ttl=ttl),
        _elector(database, "replica-b", ttl=ttl),
    )
    try:
        leading = stalled.step()
        assert leading.is_leader
        old_token = leading.fencing_token
        assert old_token is not None
        started = time.monotonic()
        # Same process, so its holder looks alive: only the expiry frees the lease.
        while not follower.step().is_leader:
            assert time.monotonic() - started < ttl + 5, "no takeover after the expiry"
            time.sleep(0.05)
        took = time.monotonic() - started
        assert took >= ttl * 0.9, f"taken over after {took:.2f} s, before the lease expired"
        new_token = follower.status().fencing_token
        assert new_token == old_token + 1

        # The stalled replica "thaws": its status already says it does not lead ...
        thawed = stalled.status()
        assert not thawed.is_leader
        assert thawed.fencing_token is None
        # ... a write under its old token is refused, the new leader's goes through ...
        with pytest.raises(FencingTokenStale), database.writer() as session:
            record_decision(
                session,
                decision=_decision(actor="replica-a", token=old_token),
                lease_name="controlplane",
            )
        with database.writer() as session:
            record_decision(
                session,
                decision=_decision(actor="replica-b", token=new_token),
                lease_name="controlplane",
            )
        # ... and its next round does not win the lease back.
        assert not stalled.step().is_leader
        assert follower.step().is_leader
        with database.reader() as session:
            assert [e.actor for e in list_audit(session)] == ["replica-b"]
    finally:
        stalled.stop()
        follower.stop()


def test_an_expired_lease_refuses_its_holders_writes_before_any_takeover(
    database: Database,
) -> None:
    only = _elector(database, "replica-a", ttl=0.5)
    try:
        token = only.step().fencing_token
        assert token is not None
        time.sleep(0.7)  # never renewed: the lease lapses although nobody took it
        assert not only.status().is_leader
        with pytest.raises(FencingTokenStale, match="expired"), database.writer() as session:
            record_decision(
                session,
                decision=_decision(actor="replica-a", token=token),
                lease_name="controlplane",
            )
        again = only.step()  # takes it again, under a new token
        assert again.is_leader
        assert again.fencing_token == token + 1
    finally:
        only.stop()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from controlplane.leader import LeaseElector, SQLiteLease
    from controlplane.store.database import Database

    database = Database.from_url(sys.argv[1])
    elector = LeaseElector(store=SQLiteLease(database=database), name="controlplane",
                           replica_id="doomed", ttl=600)
    print(elector.step().fencing_token, flush=True)
    time.sleep(600)
    """
)


def test_a_killed_holder_is_replaced_at_once_not_after_its_expiry(
    database: Database, tmp_path: Path
) -> None:
    url = str(database.engine.url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        token = int(holder.stdout.readline())
        follower = _elector(database, "replica-b", ttl=600)
        try:
            assert not follower.step().is_leader  # alive: its ten-minute lease stands
            holder.kill()
            holder.wait(timeout=10)
            taken = follower.step()
            assert taken.is_leader
            assert taken.fencing_token == token + 1
        finally:
            follower.stop()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


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
        mode="sqlite-lease",
        is_leader=False,
        lease_holder="replica-a",
        lease_token=1,
    )
    with database.reader() as session:
        lease = read_lease(session, name="controlplane")
    assert lease is not None
    assert lease.holder is None  # released


def test_an_in_memory_store_is_its_own_leader() -> None:
    db = Database.from_url("sqlite://")
    db.migrate()
    try:
        elector = _elector(db, "solo")
        assert elector.step().fencing_token == 1
        assert elector.step().is_leader
    finally:
        db.dispose()


def test_disabled_election_never_leads() -> None:
    leadership = NoLeadership(replica_id="api-only")
    leadership.start()
    assert leadership.status().is_leader is False
    assert leadership.status().mode == "disabled"
