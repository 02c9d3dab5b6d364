"""The control plane's side of the Patroni tests: an engine on the shipped policy, the Patroni
driver and watch on a test cluster, the DR check as ``controlplane serve`` builds it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from controlplane.actions.engine import ActionEngine
from controlplane.actions.patroni import PatroniFailover
from controlplane.core.config import FailoverMode
from controlplane.evaluation.service import build_target_checks
from controlplane.failover.patroni import PatroniDriver
from controlplane.runtime import Runtime
from controlplane.stack.patroni import PatroniCluster
from controlplane.store.drills import list_drills, list_restore_validations
from controlplane.store.findings import list_findings
from controlplane.targets.reconcile import StoreDrillHistory, reconcile

#: The DR policy's tier of the inventory database (critical).
RPO = timedelta(minutes=5)


def urls(cluster: PatroniCluster) -> tuple[str, ...]:
    return tuple(member.api_url for member in cluster.members)


@contextmanager
def patroni_watch(
    engine: ActionEngine, cluster: PatroniCluster, *, mode: FailoverMode, start: bool = True
) -> Iterator[PatroniFailover]:
    """The control plane's Patroni watch on ``cluster`` (reading every 0.5 s), stopped after."""
    watch = PatroniFailover(
        engine=engine,
        driver=PatroniDriver(urls=urls(cluster)),
        database="inventory",
        mode=mode,
        rpo=RPO,
        interval=0.5,
        threshold=3,
    )
    if start:
        watch.start()
    try:
        yield watch
    finally:
        watch.stop()
        watch.driver.close()


def dr_findings(runtime: Runtime, cluster: PatroniCluster) -> dict[str, dict[str, object]]:
    """Run the DR check as ``controlplane serve`` builds it for the Patroni driver and
    reconcile its findings; the open ``dr.*`` findings, kind → evidence."""
    settings = runtime.settings.with_values(
        failover={"failover_driver": "patroni", "patroni_urls": urls(cluster)}
    )
    history = StoreDrillHistory(
        database=runtime.database,
        list_drills=list_drills,
        list_restores=list_restore_validations,
    )
    (check,) = build_target_checks(settings, orchestration=None, drill_history=history)
    now = datetime.now(UTC)
    run = check.run(now=now)
    with runtime.database.writer() as session:
        reconcile(session, run=run, at=now)
    with runtime.database.reader() as session:
        return {
            f.kind: f.evidence
            for f in list_findings(session, open_only=True)
            if f.kind.startswith("dr.") and f.subject == "database/inventory"
        }
