"""The Patroni engine as the stack runs it: etcd, two members, synchronous mode, the stack's
timing in etcd, the multi-host connection string reaching whichever member leads."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from controlplane.stack.patroni import FAST_TIMING, PatroniCluster
from tests.support.kube import wait_for

pytestmark = pytest.mark.integration


def roles(cluster: PatroniCluster) -> dict[str, tuple[str, str]]:
    return {m["name"]: (m["role"], m["state"]) for m in cluster.cluster_state().get("members", [])}


def test_one_leader_and_a_synchronous_replica_streaming_from_it(
    patroni_cluster: PatroniCluster,
) -> None:
    cluster = patroni_cluster
    wait_for(
        lambda: (
            roles(cluster)
            == {
                "member-1": ("leader", "running"),
                "member-2": ("sync_standby", "streaming"),
            }
        ),
        timeout=30,
        what="member-1 leading and member-2 its synchronous standby",
    )
    config = httpx.get(f"{cluster.members[0].api_url}/config", timeout=5).json()
    assert {k: config[k] for k in FAST_TIMING.as_dcs()} == FAST_TIMING.as_dcs()
    assert config["synchronous_mode"] is True
    assert config["postgresql"]["use_pg_rewind"] is True

    # Written through the multi-host string (libpq finds the writable member), read on the
    # replica: with synchronous commit the row is there as soon as the commit returns.
    with psycopg.connect(cluster.multi_host_dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (n int)")
        conn.execute("INSERT INTO probe VALUES (42)")
        port = conn.info.port
    assert port == cluster.members[0].port
    replica = cluster.member("member-2")
    with psycopg.connect(replica.dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT n, pg_is_in_recovery() FROM probe").fetchone()
    assert row == (42, True)
