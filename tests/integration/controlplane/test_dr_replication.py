"""DR checks against a real primary + streaming replica: lag above the RPO, a stopped replica.

The pair is this module's own (the tests stop and pause it), on free loopback ports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from controlplane.targets.dr import check_dr
from controlplane.targets.policy import DRPolicy, load_dr_policy
from controlplane.targets.replication import ReplicationReadError, read_replication
from tests.support.backends import TEST_PG_CONF, BackendPool, launch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(backend_pool: BackendPool) -> Iterator[tuple[PostgresPrimary, PostgresReplica]]:
    primary = launch(backend_pool, PostgresPrimary, extra_conf=TEST_PG_CONF)
    replica = launch(backend_pool, PostgresReplica, primary=primary, slot="dr_replica")
    with psycopg.connect(primary.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ticks (at timestamptz DEFAULT now())")
    yield primary, replica
    backend_pool.stop(replica)
    backend_pool.stop(primary)


@pytest.fixture(scope="module")
def tight_policy(tmp_path_factory: pytest.TempPathFactory) -> DRPolicy:
    """The shipped policy with a 2 s RPO for the critical tier, so lag can exceed it quickly."""
    text = Path("controlplane/policies/dr.yaml").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("policy") / "dr.yaml"
    path.write_text(text.replace("critical: {rto: 15m, rpo: 5m}", "critical: {rto: 15m, rpo: 2s}"))
    return load_dr_policy(path)


def replication_kinds(policy: DRPolicy, primary: PostgresPrimary) -> dict[str, str]:
    findings = check_dr(
        policy, now=datetime.now(UTC), replicas={"inventory": read_replication(primary.dsn())}
    )
    return {f.subject: f.kind for f in findings if f.kind.startswith("dr.replica")}


def wait_for(condition: object, *, timeout: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.25)


def test_streaming_replica_is_reported_by_name(
    pair: tuple[PostgresPrimary, PostgresReplica],
) -> None:
    primary, _ = pair
    (status,) = read_replication(primary.dsn())
    assert status.name == "dr_replica"
    assert status.state == "streaming"
    assert status.client_addr == "127.0.0.1"


def test_lag_forced_above_the_rpo_raises_a_finding_that_clears_when_replay_resumes(
    pair: tuple[PostgresPrimary, PostgresReplica], tight_policy: DRPolicy
) -> None:
    primary, replica = pair
    wait_for(lambda: replication_kinds(tight_policy, primary) == {})
    with psycopg.connect(replica.dsn(), autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            with psycopg.connect(primary.dsn(), autocommit=True) as conn:

                def lagging() -> bool:
                    conn.execute("INSERT INTO ticks DEFAULT VALUES")
                    return bool(replication_kinds(tight_policy, primary))

                wait_for(lagging, timeout=20)
            (status,) = read_replication(primary.dsn())
            assert status.lag_bytes is not None
            assert status.lag_bytes > 0
            findings = check_dr(
                tight_policy,
                now=datetime.now(UTC),
                replicas={"inventory": read_replication(primary.dsn())},
            )
            lag = next(f for f in findings if f.kind == "dr.replication_lag")
            assert lag.subject == "database/inventory/replica/dr_replica"
            assert lag.evidence["replay_lag_s"] > 2
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    wait_for(lambda: replication_kinds(tight_policy, primary) == {})


def test_stopped_replica_is_missing_until_it_comes_back(
    backend_pool: BackendPool,
    pair: tuple[PostgresPrimary, PostgresReplica],
    tight_policy: DRPolicy,
) -> None:
    primary, replica = pair
    replica.stop()
    assert replication_kinds(tight_policy, primary) == {"database/inventory": "dr.replica_missing"}
    replica.start()
    wait_for(lambda: replication_kinds(tight_policy, primary) == {})


def test_unreachable_primary_is_a_read_error_not_zero_replicas() -> None:
    with pytest.raises(ReplicationReadError):
        read_replication("postgresql://postgres@127.0.0.1:9/postgres", timeout=1)
