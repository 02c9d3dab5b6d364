"""Automatic failover through the action gate: the control plane promotes, audits, and obeys
the kill switch."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.actions.database import FailoverService
from controlplane.failover.fencing import LocalFencer
from controlplane.failover.nodes import Node, probe
from controlplane.failover.writeprobe import WriteProbe, missing_acknowledged
from controlplane.runtime import Runtime
from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from controlplane.store.actions import KILL_SWITCH, set_flag
from controlplane.store.audit import list_audit
from tests.support.backends import TEST_PG_CONF, BackendPool, launch
from tests.support.runtime import database_engine, leading_runtime

pytestmark = pytest.mark.integration

SLOT = "auto_replica"


def wait_for(check: Callable[[], bool], *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with leading_runtime(tmp_path) as started:
        yield started


@pytest.fixture
def pair(backend_pool: BackendPool) -> Iterator[tuple[PostgresPrimary, Node, Node]]:
    conf = {**TEST_PG_CONF, "synchronous_standby_names": f"'FIRST 1 ({SLOT})'"}
    primary = launch(backend_pool, PostgresPrimary, extra_conf=conf)
    replica = launch(backend_pool, PostgresReplica, primary=primary, slot=SLOT)
    yield (
        primary,
        Node(name="primary", host="127.0.0.1", port=primary.port),
        Node(name=SLOT, host="127.0.0.1", port=replica.port),
    )
    backend_pool.stop(replica)
    backend_pool.stop(primary)


def service_for(
    runtime: Runtime, primary: PostgresPrimary, old: Node, new: Node
) -> FailoverService:
    engine = database_engine(runtime)
    return FailoverService(
        engine=engine,
        nodes=[old, new],
        fencer=LocalFencer(data_dirs={old.name: primary.data_dir}),
        rpo=timedelta(minutes=5),
        database="inventory",
    )


def kill(primary: PostgresPrimary) -> None:
    assert primary.process is not None
    assert primary.process.pid is not None
    os.killpg(primary.process.pid, signal.SIGKILL)


def test_primary_killed_under_load_is_failed_over_by_the_control_plane(
    runtime: Runtime, pair: tuple[PostgresPrimary, Node, Node]
) -> None:
    primary, old, new = pair
    writes = WriteProbe(nodes=[old, new])
    writes.prepare()
    writes.start()
    service = service_for(runtime, primary, old, new)
    service.start()
    try:
        assert writes.wait_for_writes(50, timeout=30)
        time.sleep(1)  # the watcher has healthy samples of the primary
        kill(primary)
        assert writes.wait_for_recovery(timeout=60), writes.report.last_error
        wait_for(lambda: bool(service.decisions))
    finally:
        service.stop()
        report = writes.stop()
    assert not probe(new).in_recovery
    assert missing_acknowledged(new, report.acked) == []
    with runtime.database.reader() as session:
        (entry,) = list_audit(session, action="failover_database")
    assert (entry.decision, entry.outcome) == ("taken", "succeeded")
    assert entry.fencing_token is not None
    assert entry.evidence["failover"]["candidate"] == SLOT
    assert entry.evidence["primary"] == "primary"
    print(f"\ncontrol-plane failover: client RTO {report.client_rto_s:.2f} s")


def test_with_the_kill_switch_on_nothing_is_promoted_and_the_refusal_is_audited(
    runtime: Runtime, pair: tuple[PostgresPrimary, Node, Node]
) -> None:
    primary, old, new = pair
    with runtime.database.writer() as session:
        set_flag(session, name=KILL_SWITCH, enabled=True, at=datetime.now(UTC), by="ops")
    service = service_for(runtime, primary, old, new)
    service.start()
    try:
        time.sleep(1)
        kill(primary)
        wait_for(lambda: bool(service.decisions))
    finally:
        service.stop()
    assert probe(new).in_recovery  # still a standby: nothing acted
    with runtime.database.reader() as session:
        entries = list_audit(session, action="failover_database")
    assert entries
    assert all(e.decision == "refused" for e in entries)
    assert entries[-1].reason.startswith("kill_switch")
