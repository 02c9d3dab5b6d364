"""Failover of a real PostgreSQL primary under a numbered write load.

Each test has its own primary + streaming replica (they get killed and promoted).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import psycopg
import pytest

from controlplane.core.processes import processes_under
from controlplane.failover.fencing import LocalFencer
from controlplane.failover.nodes import Node, probe
from controlplane.failover.run import Detection, Watch, fail_over, watch_primary
from controlplane.failover.writeprobe import WriteProbe, missing_acknowledged
from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from tests.support.backends import TEST_PG_CONF, BackendPool, launch

pytestmark = pytest.mark.integration

SLOT = "failover_replica"


@dataclass
class Pair:
    primary: PostgresPrimary
    replica: PostgresReplica
    primary_node: Node
    replica_node: Node

    def fencer(self) -> LocalFencer:
        return LocalFencer(data_dirs={self.primary_node.name: self.primary.data_dir})


def make_pair(pool: BackendPool, *, synchronous: bool) -> Pair:
    conf = dict(TEST_PG_CONF)
    if synchronous:
        conf["synchronous_standby_names"] = f"'FIRST 1 ({SLOT})'"
    primary = launch(pool, PostgresPrimary, extra_conf=conf)
    replica = launch(pool, PostgresReplica, primary=primary, slot=SLOT)
    return Pair(
        primary=primary,
        replica=replica,
        primary_node=Node(name="old-primary", host="127.0.0.1", port=primary.port),
        replica_node=Node(name=SLOT, host="127.0.0.1", port=replica.port),
    )


@pytest.fixture
def sync_pair(backend_pool: BackendPool) -> Iterator[Pair]:
    pair = make_pair(backend_pool, synchronous=True)
    yield pair
    backend_pool.stop(pair.replica)
    backend_pool.stop(pair.primary)


@pytest.fixture
def async_pair(backend_pool: BackendPool) -> Iterator[Pair]:
    pair = make_pair(backend_pool, synchronous=False)
    yield pair
    backend_pool.stop(pair.replica)
    backend_pool.stop(pair.primary)


class Watcher:
    """Runs watch_primary in a thread, as the control plane does."""

    def __init__(self, node: Node) -> None:
        self.result: Detection | None = None
        self.state = Watch()
        self.thread = threading.Thread(target=self._run, args=(node,), daemon=True)

    def _run(self, node: Node) -> None:
        self.result = watch_primary(node, interval=0.25, threshold=3, max_wait=60, state=self.state)

    def start(self) -> None:
        """Start watching and return once the watcher has seen the primary healthy."""
        self.thread.start()
        for _ in range(200):
            if self.state.healthy_probes >= 2:
                return
            threading.Event().wait(0.05)
        raise AssertionError("the watcher never saw a healthy primary")

    def join(self) -> Detection:
        self.thread.join(timeout=90)
        assert self.result is not None, "the primary failure was not detected"
        return self.result


def kill_primary(pair: Pair) -> None:
    assert pair.primary.process is not None
    assert pair.primary.process.pid is not None
    os.killpg(pair.primary.process.pid, signal.SIGKILL)


def test_sigkill_primary_with_synchronous_replication_loses_no_acknowledged_write(
    sync_pair: Pair,
) -> None:
    pair = sync_pair
    writes = WriteProbe(nodes=[pair.primary_node, pair.replica_node])
    writes.prepare()
    writes.start()
    watcher = Watcher(pair.primary_node)
    try:
        assert writes.wait_for_writes(50, timeout=30)
        watcher.start()
        assert writes.wait_for_writes(80, timeout=30)  # the watcher has healthy samples now
        kill_primary(pair)
        detection = watcher.join()
        record = fail_over(
            detection,
            standbys=[pair.replica_node],
            fencer=pair.fencer(),
            rpo=timedelta(minutes=5),
        )
        assert record.promoted, record.refused
        assert record.candidate == SLOT
        assert record.synchronous is True
        assert writes.wait_for_recovery(timeout=30), writes.report.last_error
        assert writes.wait_for_writes(len(writes.report.acked) + 20, timeout=30)
    finally:
        report = writes.stop()
    assert detection.failed_probes == 3
    assert record.fenced_at is not None
    assert record.promoted_at is not None
    assert record.fenced_at <= record.promoted_at
    assert missing_acknowledged(pair.replica_node, report.acked) == []
    assert report.client_rto_s is not None
    print(f"\nclient-side RTO {report.client_rto_s:.2f} s, {len(report.acked)} acked writes")
    assert not probe(pair.replica_node).in_recovery


def test_fenced_old_primary_restarted_does_not_accept_writes(sync_pair: Pair) -> None:
    pair = sync_pair
    watcher = Watcher(pair.primary_node)
    watcher.start()
    kill_primary(pair)
    record = fail_over(
        watcher.join(), standbys=[pair.replica_node], fencer=pair.fencer(), rpo=timedelta(minutes=5)
    )
    assert record.promoted
    assert (pair.primary.data_dir / "standby.signal").exists()

    pair.primary.spawn()  # someone restarts the old primary
    try:
        for _ in range(40):
            try:
                with psycopg.connect(
                    pair.primary.dsn(), autocommit=True, connect_timeout=2
                ) as conn:
                    recovering = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    assert recovering == (True,)
                    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                        conn.execute("CREATE TABLE split_brain (x int)")
                    break
            except psycopg.OperationalError:
                if (
                    pair.primary.process is not None
                    and pair.primary.process.exit_code() is not None
                ):
                    break  # it refused to come up at all: also fenced
                threading.Event().wait(0.25)
        else:
            pytest.fail("old primary neither came up read-only nor stayed down")
    finally:
        pair.primary.stop()
    with psycopg.connect(pair.replica.dsn(), autocommit=True) as new_primary:
        new_primary.execute("CREATE TABLE after_failover (x int)")


def walsender_pid(primary: PostgresPrimary) -> int:
    with psycopg.connect(primary.dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT pid FROM pg_stat_replication").fetchone()
    assert row is not None
    return int(row[0])


def test_asynchronous_replication_reports_exactly_the_writes_it_lost(async_pair: Pair) -> None:
    pair = async_pair
    writes = WriteProbe(nodes=[pair.primary_node, pair.replica_node])
    writes.prepare()
    writes.start()
    watcher = Watcher(pair.primary_node)
    try:
        assert writes.wait_for_writes(30, timeout=30)
        watcher.start()
        sender = walsender_pid(pair.primary)
        os.kill(sender, signal.SIGSTOP)  # WAL stops flowing to the standby: async commits go on
        # One write at a time: the first acknowledged after this may have been committed, and
        # its WAL sent, before the walsender stopped. Every later one is lost to the standby.
        before = len(writes.report.acked) + 1
        assert writes.wait_for_writes(before + 40, timeout=30)
        kill_primary(pair)  # the postmaster only: its children each lead their own group
        detection = watcher.join()
        # The standby stopped receiving, so its lag may be unknown (refused without --force);
        # the operator forces the promotion and accepts the loss, which is then measured.
        record = fail_over(
            detection,
            standbys=[pair.replica_node],
            fencer=pair.fencer(),
            rpo=timedelta(minutes=5),
            force=True,
        )
        assert record.promoted, record.refused
        # Fencing took the stopped walsender too: nothing of the old primary runs any more.
        assert processes_under(pair.primary.data_dir) == {}
        assert writes.wait_for_recovery(timeout=30), writes.report.last_error
    finally:
        report = writes.stop()
    missing = missing_acknowledged(pair.replica_node, report.acked)
    assert record.synchronous is False
    assert len(missing) >= 40
    assert record.lost_bytes is not None
    assert record.lost_bytes > 0
    # The missing writes are exactly the ones acknowledged while the standby was not receiving.
    assert missing == list(range(missing[0], missing[0] + len(missing)))


def test_candidate_lagging_beyond_the_rpo_is_refused_unless_forced(async_pair: Pair) -> None:
    pair = async_pair
    watcher = Watcher(pair.primary_node)
    with psycopg.connect(pair.replica.dsn(), autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
    watcher.start()
    with psycopg.connect(pair.primary.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE ticks (at timestamptz DEFAULT now())")
        for _ in range(30):
            conn.execute("INSERT INTO ticks DEFAULT VALUES")
            threading.Event().wait(0.1)
    kill_primary(pair)
    detection = watcher.join()
    refused = fail_over(
        detection,
        standbys=[pair.replica_node],
        fencer=pair.fencer(),
        rpo=timedelta(seconds=1),
    )
    assert not refused.promoted
    assert refused.refused is not None
    assert "exceeds the RPO budget" in refused.refused
    assert probe(pair.replica_node).in_recovery  # nothing was promoted
    with psycopg.connect(pair.replica.dsn(), autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_resume()")
    forced = fail_over(
        detection,
        standbys=[pair.replica_node],
        fencer=pair.fencer(),
        rpo=timedelta(seconds=1),
        force=True,
    )
    assert forced.promoted
    assert forced.forced is True
