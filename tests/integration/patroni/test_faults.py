"""The Patroni engine under faults: real etcd, real Patroni, real PostgreSQL, synchronous mode,
the stack's timing (``FAST_TIMING``: ttl 23, loop_wait 1, retry_timeout 11,
primary_start_timeout 0; see docs/failover-tuning.md).

While each test breaks the primary, two observers run:

- the numbered write probe through the multi-host connection string (libpq finds whichever
  member is writable), as the inventory API writes: writes resume, and no acknowledged number is
  missing afterwards, neither on the new primary nor on the old one once it has rejoined;
- a :class:`~tests.support.patroni.PrimaryWatch` that writes to each member directly and samples
  ``pg_is_in_recovery()`` on each: at most one member takes acknowledged writes at any instant,
  and none of its acknowledged writes is lost either.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from controlplane.stack.patroni import FAST_TIMING, PatroniCluster, PatroniMember
from tests.support.backends import PatroniFactory
from tests.support.kube import wait_for
from tests.support.netfault import TcpLink
from tests.support.patroni import PrimaryWatch, WriteLoad

pytestmark = pytest.mark.integration

#: A lost primary is replaced once its lease expires; the rest is promotion and reconnecting.
TAKEOVER_TIMEOUT = FAST_TIMING.ttl + 30
#: Crash recovery and pg_rewind of the old primary, then streaming until Patroni names it the
#: synchronous standby (6-21 s in make bench-failover).
REJOIN_TIMEOUT = 90


def states(cluster: PatroniCluster) -> dict[str, tuple[str, str]]:
    return {m["name"]: (m["role"], m["state"]) for m in cluster.cluster_state()["members"]}


def is_primary(member: PatroniMember) -> bool:
    try:
        with psycopg.connect(member.dsn(), autocommit=True, connect_timeout=1) as conn:
            row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return False
    return bool(row and row[0])


def other(cluster: PatroniCluster, member: PatroniMember) -> PatroniMember:
    return next(m for m in cluster.members if m is not member)


def assert_rejoined_and_nothing_lost(
    cluster: PatroniCluster,
    *,
    load: WriteLoad,
    watch: PrimaryWatch,
    old: PatroniMember,
    new: PatroniMember,
) -> None:
    assert states(cluster) == {
        new.member: ("leader", "running"),
        old.member: ("sync_standby", "streaming"),
    }
    assert load.report.acked
    assert watch.acked(new.member)
    assert load.missing_on(new) == []
    assert watch.missing_on(new) == []
    wait_for(
        lambda: not load.missing_on(old) and not watch.missing_on(old),
        timeout=15,
        what="the old primary, now a replica, has every acknowledged write",
    )
    assert watch.overlapping_writers() == []


def test_a_killed_postmaster_fails_over_to_the_synchronous_standby_and_rejoins_it(
    patroni_cluster: PatroniCluster,
) -> None:
    """SIGKILL of the primary's postmaster, its Patroni alive. With a synchronous standby that
    has every acknowledged commit, the stack's timing (primary_start_timeout 0) fails over at
    once rather than wait for crash recovery; the old primary comes back as its replica."""
    cluster = patroni_cluster
    old = cluster.wait_ready()
    new = other(cluster, old)
    with PrimaryWatch(cluster) as watch, WriteLoad(cluster) as load:
        old.kill_postmaster()
        load.wait_resumed(timeout=30)
        assert cluster.wait_ready(REJOIN_TIMEOUT) is new
        load.wait_more()
    assert_rejoined_and_nothing_lost(cluster, load=load, watch=watch, old=old, new=new)


def test_a_killed_member_is_replaced_when_its_lease_expires_and_rejoins_when_restarted(
    patroni_cluster: PatroniCluster,
) -> None:
    """SIGKILL of the whole primary member (Patroni and every PostgreSQL process: a lost
    host). Nobody can tell it from a slow one until its lease expires; then the synchronous
    standby takes over. Started again on its data folder, the old primary rewinds what it
    alone had (never acknowledged) and follows the new one."""
    cluster = patroni_cluster
    old = cluster.wait_ready()
    new = other(cluster, old)
    with PrimaryWatch(cluster) as watch, WriteLoad(cluster) as load:
        old.kill()
        load.wait_resumed(timeout=TAKEOVER_TIMEOUT)
        assert is_primary(new)
        old.restart()
        assert cluster.wait_ready(REJOIN_TIMEOUT) is new
        load.wait_more()
    assert_rejoined_and_nothing_lost(cluster, load=load, watch=watch, old=old, new=new)


@pytest.fixture
def etcd_links() -> Iterator[dict[str, TcpLink]]:
    """One relay per member between it and etcd (closed after the cluster has stopped: the
    fixture is set up before ``patroni_factory``)."""
    links: dict[str, TcpLink] = {}
    yield links
    for link in links.values():
        link.close()


def test_a_primary_cut_off_from_etcd_demotes_itself_before_another_is_promoted(
    etcd_links: dict[str, TcpLink], patroni_factory: PatroniFactory
) -> None:
    """A partition: the primary's Patroni and PostgreSQL both run on, only its path to etcd is
    dead (its relay to etcd drops every byte, as a broken network does). Its Patroni gives up
    on etcd after retry_timeout and demotes its PostgreSQL; the other member may only take over
    once the lease has expired, and Patroni's rule loop_wait + 2 x retry_timeout <= ttl puts
    that after the demotion. So at no sampled instant do two members say they are primary, and
    only one takes acknowledged writes at a time. Once the path is back, the old primary
    rejoins as a replica."""

    def through_links(cluster: PatroniCluster) -> None:
        for member in cluster.members:
            link = TcpLink(target_port=cluster.etcd.ports["client"])
            etcd_links[member.member] = link
            member.reach_etcd_through(link.url)

    cluster = patroni_factory(synchronous_mode=True, before_start=through_links)
    old = cluster.wait_ready()
    new = other(cluster, old)
    with PrimaryWatch(cluster) as watch, WriteLoad(cluster) as load:
        etcd_links[old.member].cut()
        wait_for(
            lambda: not is_primary(old),
            timeout=FAST_TIMING.loop_wait + 2 * FAST_TIMING.retry_timeout + 15,
            what="the primary cut off from etcd demotes itself",
        )
        load.wait_resumed(timeout=TAKEOVER_TIMEOUT)
        assert etcd_links[old.member].is_cut
        assert is_primary(new)
        load.wait_more()
        etcd_links[old.member].restore()
        assert cluster.wait_ready(REJOIN_TIMEOUT) is new
        load.wait_more()
    assert watch.overlapping_primaries() == []
    (demoted_at,) = [end for _, end in watch.primary_spans(old.member)]
    promoted_at = watch.primary_spans(new.member)[0][0]
    assert demoted_at < promoted_at
    assert_rejoined_and_nothing_lost(cluster, load=load, watch=watch, old=old, new=new)


def test_a_primary_whose_patroni_is_frozen_past_its_lease_takes_no_acknowledged_write(
    patroni_cluster: PatroniCluster,
) -> None:
    """SIGSTOP of the primary's Patroni (a stalled process or a paused VM with its PostgreSQL
    still serving): nothing can demote that PostgreSQL, which goes on saying it is the primary
    after the lease has expired and the synchronous standby has been promoted. What keeps the
    data safe is synchronous replication: the standby no longer follows the old primary, so
    every commit there waits for it and is never acknowledged. Thawed, Patroni finds the leader
    key held by the other member, demotes and rewinds its PostgreSQL and rejoins."""
    cluster = patroni_cluster
    old = cluster.wait_ready()
    new = other(cluster, old)
    with PrimaryWatch(cluster) as watch, WriteLoad(cluster) as load:
        old.freeze()
        try:
            wait_for(
                lambda: bool(watch.acked(new.member)),
                timeout=TAKEOVER_TIMEOUT,
                what="the synchronous standby promoted and taking writes",
            )
            time.sleep(3)  # two PostgreSQL primaries; the frozen one's writes hang
            assert is_primary(old)
        finally:
            old.thaw()
        load.wait_resumed(timeout=60)
        assert cluster.wait_ready(REJOIN_TIMEOUT) is new
        load.wait_more()
    assert watch.overlapping_primaries(), "the frozen member's PostgreSQL never said primary"
    first_new = min(w.ended_at for w in watch.acked(new.member))
    unanswered = [
        w
        for w in watch.attempts(old.member)
        if not w.acknowledged and w.ended_at > first_new + 2 and w.ended_at - w.sent_at > 2
    ]
    assert unanswered, "no write to the frozen primary was left waiting while the other took writes"
    assert_rejoined_and_nothing_lost(cluster, load=load, watch=watch, old=old, new=new)
