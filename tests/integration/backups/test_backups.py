"""Backups with the real pgBackRest on a real PostgreSQL under write load: a full then a
differential backup taken by the control plane's schedule through the gate, stored as pgBackRest
describes them; a point-in-time restore to an instant T holding every write acknowledged before
T and none sent after it (the numbered write probe)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from controlplane.actions.service import ActionService
from controlplane.backups.scratch import RestoreTarget, restored
from controlplane.backups.validation import wait_for_archive
from controlplane.failover.nodes import Node
from controlplane.failover.writeprobe import TABLE, WriteProbe
from controlplane.runtime import Runtime
from controlplane.store.audit import list_audit
from controlplane.store.backups import list_backups
from tests.integration.backups.conftest import BackedUp, ControlPlane, control_plane_settings
from tests.integration.controlplane.evaluation.support import eventually

pytestmark = pytest.mark.integration


def probe_on(backed_up: BackedUp) -> WriteProbe:
    probe = WriteProbe(
        nodes=[Node(name="primary", host="127.0.0.1", port=backed_up.primary.port)],
        interval=0.005,
    )
    probe.prepare()
    return probe


def test_a_full_then_a_differential_backup_under_write_load(
    backed_up: BackedUp, control_plane: ControlPlane
) -> None:
    schedule = control_plane.schedule
    probe = probe_on(backed_up)
    probe.start()
    try:
        assert probe.wait_for_writes(50, timeout=30)
        now = datetime.now(UTC)
        assert schedule.backup_due(now) == "full"
        first = schedule.run_backup_if_due()
        assert first is not None
        assert first.outcome == "succeeded", first.outcome_detail
        assert schedule.backup_due(datetime.now(UTC)) is None  # the differential is 3 s away
        eventually(lambda: schedule.backup_due(datetime.now(UTC)) == "diff", timeout=10)
        second = schedule.run_backup_if_due()
        assert second is not None
        assert second.outcome == "succeeded", second.outcome_detail
        written_during = len(probe.report.acked)
    finally:
        report = probe.stop()
    assert report.failures == 0
    assert written_during > 100  # the backups ran while the probe wrote

    with control_plane.runtime.database.reader() as session:
        diff, full = list_backups(session, database="inventory")
        audit = list_audit(session, action="backup")
    assert (full.type, diff.type) == ("full", "diff")
    assert diff.prior == full.label
    assert full.label is not None
    assert diff.label is not None
    assert diff.label.startswith(full.label)  # pgBackRest names a differential after its full
    for backup in (full, diff):
        assert backup.succeeded, backup.error
        assert backup.started_at <= backup.finished_at
        assert backup.duration_s == (backup.finished_at - backup.started_at).total_seconds()
        assert (backup.wal_start or "") <= (backup.wal_stop or "")
        assert backup.lsn_start is not None
        assert backup.lsn_stop is not None
        assert (backup.size_bytes or 0) > (backup.repo_delta_bytes or 0) > 0
    # WAL written under load between the two backups; the differential copied less.
    assert (diff.wal_start or "") > (full.wal_stop or "")
    assert (diff.delta_bytes or 0) < (full.size_bytes or 0)
    # Both were audited decisions of the gate, their figures in the evidence.
    assert [(e.decision, e.outcome) for e in audit] == [("taken", "succeeded")] * 2
    assert {e.evidence["backup"]["label"] for e in audit} == {full.label, diff.label}
    assert {e.decision_id for e in audit} == {full.decision_id, diff.decision_id}


def test_point_in_time_restore_holds_the_writes_acknowledged_before_the_instant_and_none_after(
    backed_up: BackedUp, control_plane: ControlPlane
) -> None:
    control_plane.schedule.backup_now("full")
    probe = probe_on(backed_up)
    probe.start()
    try:
        assert probe.wait_for_writes(200, timeout=30)
        acknowledged_before = len(probe.report.acked)
        instant = datetime.now(UTC)
        acknowledged_at = len(probe.report.acked)
        assert probe.wait_for_writes(acknowledged_at + 200, timeout=30)
    finally:
        report = probe.stop()
    with psycopg.connect(backed_up.dsn("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert row is not None
    wait_for_archive(backed_up.dsn(), segment=str(row[0]), timeout=60)

    with (
        restored(
            backed_up.pgbackrest, target=RestoreTarget.time(instant), scratch=backed_up.scratch
        ) as server,
        psycopg.connect(server.dsn(), autocommit=True) as conn,
    ):
        present = {seq for (seq,) in conn.execute(f"SELECT seq FROM {TABLE}")}
        replayed = conn.execute("SELECT pg_last_xact_replay_timestamp()").fetchone()
    assert not backed_up.scratch.exists()  # stopped and removed
    before = set(report.acked[:acknowledged_before])
    # Written after the instant: sent once the one in flight at T had been acknowledged.
    after = set(report.acked[acknowledged_at + 1 :])
    assert len(before) >= 200
    assert len(after) >= 190
    assert before <= present, f"acknowledged before T but missing: {sorted(before - present)[:10]}"
    assert not (after & present), f"sent after T but restored: {sorted(after & present)[:10]}"
    assert replayed is not None
    assert replayed[0] <= instant
    assert instant - replayed[0] < timedelta(seconds=5)


def test_the_leaders_scheduler_takes_the_backups_and_a_follower_takes_none(
    backed_up: BackedUp, tmp_path: Path
) -> None:
    settings = control_plane_settings(tmp_path, backed_up, backup_check_interval_seconds=0.5)
    leader = Runtime.from_settings(settings)
    follower = Runtime.from_settings(settings.with_values(leader={"replica_id": "follower"}))
    services: list[ActionService] = []
    try:
        leader.start()
        eventually(lambda: leader.leadership.status().is_leader, timeout=10)
        follower.start()
        for runtime in (leader, follower):
            services.append(ActionService.from_settings(settings, runtime=runtime))
        assert all(service.backups is not None for service in services)
        for service in services:
            service.start()

        def kinds() -> list[str]:
            with leader.database.reader() as session:
                return [b.type for b in list_backups(session, succeeded=True)]

        eventually(lambda: {"full", "diff"} <= set(kinds()), timeout=120)
        assert not follower.leadership.status().is_leader
    finally:
        for service in services:
            service.stop()
        follower.stop()
        leader.stop()
    with leader.database.reader() as session:
        audit = list_audit(session, action="backup")
    # Every backup is the leader's: one audited decision each, none refused or doubled.
    assert {entry.actor for entry in audit} == {"controlplane"}
    assert [entry.decision for entry in audit] == ["taken"] * len(audit)
    assert len(audit) == len(kinds())
