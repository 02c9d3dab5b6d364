"""Auto mode: Patroni fails over by itself. The control plane records the leader change it
observed, with evidence, the DR checks open dr.replica_missing while the old primary is away,
and resolve it once Patroni has made the restarted old primary a replica — no person involved."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from controlplane.actions.patroni import LEADER_CHANGE
from controlplane.failover.writeprobe import WriteProbe, missing_acknowledged
from controlplane.runtime import Runtime
from controlplane.stack.patroni import PatroniCluster
from controlplane.store.audit import list_audit
from tests.integration.patroni.control import dr_findings, patroni_watch
from tests.integration.patroni.test_driver import synchronous
from tests.support.kube import wait_for
from tests.support.runtime import database_engine, leading_runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with leading_runtime(tmp_path) as started:
        yield started


def test_a_leader_change_by_patroni_is_recorded_and_the_old_primary_rejoins_by_itself(
    runtime: Runtime, patroni_cluster: PatroniCluster
) -> None:
    cluster = patroni_cluster
    driver = synchronous(cluster)
    nodes = driver.cluster().nodes()
    driver.close()
    assert "dr.replica_missing" not in dr_findings(runtime, cluster)
    engine = database_engine(runtime)
    writes = WriteProbe(nodes=nodes)
    writes.prepare()
    with patroni_watch(engine, cluster, mode="auto") as watch:
        writes.start()
        try:
            assert writes.wait_for_writes(50, timeout=30), writes.report.last_error
            time.sleep(1)  # the watch has read the leader's replication
            cluster.member("member-1").kill()
            assert writes.wait_for_recovery(timeout=90), writes.report.last_error
            wait_for(lambda: bool(watch.events), timeout=30, what="the leader change recorded")
        finally:
            report = writes.stop()
        assert cluster.cluster_state().get("pause") is not True  # auto: never paused

        findings = dr_findings(runtime, cluster)
        assert "dr.replica_missing" in findings
        assert findings["dr.replica_missing"]["streaming"] == []

        cluster.member("member-1").restart(timeout=90)  # Patroni rejoins it (pg_rewind)
        wait_for(
            lambda: "dr.replica_missing" not in dr_findings(runtime, cluster),
            timeout=60,
            what="dr.replica_missing resolved",
        )

    new = next(n for n in nodes if n.name == "member-2")
    assert missing_acknowledged(new, report.acked) == []  # the synchronous standby took over
    with runtime.database.reader() as session:
        (entry,) = list_audit(session, action=LEADER_CHANGE)
        audit = [(e.action, e.decision) for e in list_audit(session)]
    assert (entry.actor, entry.decision, entry.outcome) == ("patroni", "taken", "observed")
    assert entry.fencing_token is not None
    evidence = entry.evidence
    assert (evidence["old_leader"], evidence["new_leader"]) == ("member-1", "member-2")
    assert (evidence["old_timeline"], evidence["new_timeline"]) == (1, 2)
    assert evidence["synchronous_before"] is True
    assert evidence["lag_before_bytes"] == 0
    assert evidence["measured_rpo_s"] == 0.0
    last_seen = datetime.fromisoformat(evidence["old_leader_last_seen_at"])
    seen = datetime.fromisoformat(evidence["new_leader_seen_at"])
    assert evidence["observed_rto_s"] == (seen - last_seen).total_seconds()
    # The lease had to expire before Patroni could promote: more than the watch's reads apart.
    assert evidence["observed_rto_s"] > 2 * evidence["poll_interval_s"]
    assert ("failover_database", "taken") not in audit  # auto mode: the control plane acted not
    print(
        f"\nauto failover: {entry.outcome_detail}; write probe: RTO "
        f"{report.client_rto_s:.1f} s, {len(report.acked)} writes acknowledged, none lost"
    )
