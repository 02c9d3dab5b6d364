"""The backup, archive and restore checks against the shipped DR policy (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.backups.archive import ArchiveStatus
from controlplane.targets.backups import (
    BackupRecord,
    RestoreRecord,
    check_archive,
    check_backups,
)
from controlplane.targets.policy import load_dr_policy

pytestmark = pytest.mark.unit

POLICY = load_dr_policy()
(DATABASE,) = POLICY.spec.databases
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
MB16 = 16 * 1024 * 1024
FULL = BackupRecord(type="full", finished_at=NOW - timedelta(hours=20), succeeded=True)
DIFF = BackupRecord(type="diff", finished_at=NOW - timedelta(minutes=50), succeeded=True)
RESTORE = RestoreRecord(
    kind="backup", finished_at=NOW - timedelta(days=3), succeeded=True, duration_s=80.0
)


def findings(
    backups: list[BackupRecord], restores: list[RestoreRecord] | None = None
) -> dict[str, dict[str, object]]:
    found = check_backups(
        POLICY, DATABASE, now=NOW, backups=backups, restores=restores or [RESTORE]
    )
    return {f"{f.kind} {f.subject}": f.evidence for f in found}


def test_backups_on_the_seeds_cadence_raise_nothing() -> None:
    assert findings([FULL, DIFF]) == {}


def test_no_backup_at_all_is_a_stale_full_backup_only() -> None:
    assert set(findings([])) == {"dr.backup_stale database/inventory/backup/full"}


def test_a_full_backup_older_than_one_and_a_half_days_is_stale() -> None:
    old = replace(FULL, finished_at=NOW - timedelta(hours=37))
    found = findings([old, DIFF])
    assert set(found) == {"dr.backup_stale database/inventory/backup/full"}
    assert found["dr.backup_stale database/inventory/backup/full"]["max_age_s"] == 36 * 3600


def test_no_backup_within_ninety_minutes_is_a_stale_differential() -> None:
    late = replace(DIFF, finished_at=NOW - timedelta(minutes=91))
    assert set(findings([FULL, late])) == {"dr.backup_stale database/inventory/backup/differential"}


def test_a_failed_newest_backup_is_a_finding_with_pgbackrests_message_until_one_succeeds() -> None:
    failed = BackupRecord(
        type="diff",
        finished_at=NOW - timedelta(minutes=5),
        succeeded=False,
        error="pgbackrest backup: [047]: unable to create path",
    )
    found = findings([FULL, DIFF, failed])
    assert found["dr.backup_failed database/inventory/backup"]["error"] == failed.error
    later = replace(DIFF, finished_at=NOW - timedelta(minutes=1))
    assert findings([FULL, DIFF, failed, later]) == {}


def test_the_newest_failed_restore_of_a_kind_is_a_finding_naming_the_failed_checks() -> None:
    failed = RestoreRecord(
        kind="point_in_time",
        finished_at=NOW - timedelta(days=1),
        succeeded=False,
        duration_s=70.0,
        error="checks failed: rows public.stock_levels",
        failed_checks=("rows public.stock_levels",),
    )
    found = findings([FULL, DIFF], [RESTORE, failed])
    evidence = found["dr.restore_validation_failed database/inventory/restore/point_in_time"]
    assert evidence["failed_checks"] == ["rows public.stock_levels"]
    assert set(found) == {"dr.restore_validation_failed database/inventory/restore/point_in_time"}
    passed = replace(failed, finished_at=NOW, succeeded=True, error=None, failed_checks=())
    assert findings([FULL, DIFF], [RESTORE, failed, passed]) == {}


def test_a_restore_slower_than_the_tiers_rto_is_a_finding() -> None:
    slow = replace(RESTORE, duration_s=16 * 60.0)
    found = findings([FULL, DIFF], [slow])
    evidence = found["dr.restore_rto_exceeded database/inventory/restore/backup"]
    assert (evidence["duration_s"], evidence["rto_s"]) == (960.0, 900.0)


def archive(**changes: object) -> ArchiveStatus:
    base = ArchiveStatus(
        observed_at=NOW,
        archive_mode="on",
        archive_command="pgbackrest --stanza=inventory archive-push %p",
        archive_timeout=timedelta(seconds=60),
        current_lsn=5 * MB16 + 4096,
        current_wal="000000010000000000000005",
        segment_size=MB16,
        archived_count=4,
        last_archived_wal="000000010000000000000004",
        last_archived_at=NOW - timedelta(seconds=20),
        failed_count=0,
        last_failed_wal=None,
        last_failed_at=None,
        pending_segments=0,
        oldest_pending_at=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def archive_findings(status: ArchiveStatus) -> dict[str, dict[str, object]]:
    return {f.kind: f.evidence for f in check_archive(POLICY, DATABASE, archive=status)}


def test_archive_lag_is_zero_when_nothing_was_written_past_the_newest_archived_segment() -> None:
    status = archive(current_lsn=5 * MB16)
    assert (status.lag_bytes, status.lag) == (0, timedelta(0))
    assert archive_findings(status) == {}


def test_the_open_segment_is_at_most_archive_timeout_old() -> None:
    idle = archive(last_archived_at=NOW - timedelta(hours=3))  # a quiet database
    assert idle.lag_bytes == 4096
    assert idle.lag == timedelta(seconds=60)
    assert archive_findings(idle) == {}
    busy = archive()
    assert busy.lag == timedelta(seconds=20)


def test_segments_waiting_count_from_the_last_successful_archive_against_the_rpo() -> None:
    behind = archive(
        current_lsn=9 * MB16 + 10,
        pending_segments=4,
        oldest_pending_at=NOW - timedelta(minutes=5),
        last_archived_at=NOW - timedelta(minutes=6),
    )
    assert behind.lag_bytes == 4 * MB16 + 10
    evidence = archive_findings(behind)["dr.archive_lag"]
    assert (evidence["lag_s"], evidence["rpo_s"], evidence["pending_segments"]) == (360.0, 300.0, 4)


def test_a_failed_newest_attempt_names_pgbackrests_error() -> None:
    error = "[104]: archive-push command encountered error(s): repo1: [FileOpenError] ..."
    failing = archive(
        failed_count=3,
        last_failed_wal="000000010000000000000005",
        last_failed_at=NOW - timedelta(seconds=5),
        error=error,
    )
    found = archive_findings(failing)
    assert set(found) == {"dr.archiving_failing"}
    assert found["dr.archiving_failing"]["error"] == error
    recovered = replace(failing, last_archived_at=NOW - timedelta(seconds=1))
    assert not recovered.failing


def test_archiving_off_is_a_finding() -> None:
    found = archive_findings(archive(archive_mode="off"))
    assert found["dr.archiving_failing"]["archive_mode"] == "off"
