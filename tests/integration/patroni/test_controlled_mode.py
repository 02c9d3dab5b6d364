"""Controlled mode: Patroni paused, the control plane decides. A lost leader waits for an
operator's approval; the audit log names who approved; the control plane then calls
POST /failover with the candidate it chose and Patroni promotes it. The old primary, started
again, stays stopped in the paused cluster until the control plane lets it rejoin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from controlplane.actions.patroni import FAILOVER_MODE
from controlplane.runtime import Runtime
from controlplane.stack.patroni import PatroniCluster
from controlplane.store.actions import list_pending, resolve_pending
from controlplane.store.audit import list_audit
from tests.integration.patroni.control import patroni_watch
from tests.support.kube import wait_for
from tests.support.runtime import database_engine, leading_runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with leading_runtime(tmp_path) as started:
        yield started


def roles(cluster: PatroniCluster) -> dict[str, tuple[str, str]]:
    return {m["name"]: (m["role"], m["state"]) for m in cluster.cluster_state()["members"]}


def test_a_lost_leader_is_failed_over_once_an_operator_approves(
    runtime: Runtime, patroni_cluster: PatroniCluster
) -> None:
    cluster = patroni_cluster
    wait_for(
        lambda: roles(cluster).get("member-2", ("", ""))[0] == "sync_standby",
        timeout=30,
        what="member-2 the synchronous standby",
    )
    with psycopg.connect(cluster.multi_host_dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.execute("INSERT INTO orders SELECT generate_series(1, 100)")
    engine = database_engine(runtime, modes={"failover_database": "approval"})
    with patroni_watch(engine, cluster, mode="controlled") as watch:
        wait_for(lambda: cluster.cluster_state().get("pause") is True, timeout=15, what="paused")
        old = cluster.member("member-1")
        old.kill()  # the whole leader member, as a crashed host

        def pending() -> list[str]:
            with runtime.database.reader() as session:
                return [p.decision_id for p in list_pending(session)]

        # The lease expires (ttl 20 s); paused, Patroni promotes nobody; the control plane
        # decides, and the approval mode makes it wait for a person.
        wait_for(lambda: bool(pending()), timeout=60, what="a failover decision to approve")
        (decision_id,) = pending()
        assert cluster.leader() is None  # nobody leads until the operator says so
        (decision,) = [d for d in watch.decisions if d.decision_id == decision_id]
        assert decision.action == "failover_database"
        assert decision.evidence["old_leader"] == "member-1"
        plan = decision.evidence["plan"]
        assert plan["candidate"] == "member-2"
        assert plan["considered"] == [
            {"name": "member-2", "lag_bytes": 0, "lag_s": 0.0, "synchronous": True}
        ]

        with runtime.database.writer() as session:
            resolve_pending(
                session,
                decision_id=decision_id,
                approve=True,
                by="alice",
                at=datetime.now(UTC),
                comment="member-1's host is gone",
            )
        (ran,) = engine.run_approved()  # what the action service's tick does
        assert ran.outcome == "succeeded", ran.outcome_detail
        assert cluster.leader() is cluster.member("member-2")
        with psycopg.connect(cluster.member("member-2").dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM orders").fetchone()
        assert row == (100,)  # synchronous standby: nothing acknowledged was lost

        # The old primary's host comes back: paused Patroni would leave it stopped; the
        # control plane lets it rejoin (resume until it streams, pause again).
        old.restart(timeout=90)
        wait_for(
            lambda: (
                roles(cluster).get("member-1", ("", ""))[1] == "streaming"
                and cluster.cluster_state().get("pause") is True
            ),
            timeout=60,
            what="member-1 streaming from member-2, Patroni paused again",
        )

    with runtime.database.reader() as session:
        (entry,) = list_audit(session, action="failover_database")
        (rejoin,) = list_audit(session, action="rejoin_member")
        (mode,) = list_audit(session, action=FAILOVER_MODE)
    assert entry.decision == "taken"
    assert "approved by alice: member-1's host is gone" in entry.reason
    role_change = entry.evidence["execution"]["role_change"]
    assert (role_change["kind"], role_change["new_leader"]) == ("failover", "member-2")
    assert role_change["new_timeline"] == 2
    assert (rejoin.outcome, rejoin.evidence["member"]) == ("succeeded", "member-1")
    assert (mode.evidence["paused_before"], mode.evidence["paused_after"]) == (False, True)
    print(f"\ncontrolled failover: {entry.outcome_detail}; rejoin: {rejoin.outcome_detail}")
