"""The DR page's archive, backups and restore tables from fixed data: the lag against the RPO,
pgBackRest's failure named, each backup's WAL range, each restore against the RTO with its
checks — and what each says when there is nothing to show."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dash import html

from dashboards.pages.dr.views import archive_table, backups_table, restores_table
from tests.unit.dashboards.data import NOW, database

ARCHIVE = {
    "database": "inventory",
    "configured": True,
    "rpo_s": 300,
    "observed_at": NOW.isoformat(),
    "enabled": True,
    "failing": False,
    "current_wal": "000000010000000000000012",
    "last_archived_wal": "000000010000000000000011",
    "last_archived_at": (NOW - timedelta(seconds=30)).isoformat(),
    "failed_count": 0,
    "pending_segments": 0,
    "lag_s": 30.0,
    "lag_bytes": 2 * 1024 * 1024,
}
BACKUP = {
    "id": 7,
    "database": "inventory",
    "stanza": "inventory",
    "label": "20261121-010000F",
    "type": "full",
    "requested_type": "full",
    "started_at": (NOW - timedelta(hours=2, seconds=95)).isoformat(),
    "finished_at": (NOW - timedelta(hours=2)).isoformat(),
    "duration_s": 95.0,
    "succeeded": True,
    "size_bytes": 1_288_490_189,
    "repo_delta_bytes": 262_144_000,
    "wal_start": "000000010000000000000003",
    "wal_stop": "000000010000000000000004",
}
RESTORE = {
    "id": 3,
    "database": "inventory",
    "kind": "point_in_time",
    "run_id": "d-1",
    "target": "point in time 2026-11-21 09:00:00.000000+00",
    "started_at": (NOW - timedelta(hours=1)).isoformat(),
    "finished_at": (NOW - timedelta(minutes=58)).isoformat(),
    "succeeded": False,
    "duration_s": 1000.0,
    "reached_at": (NOW - timedelta(hours=1, seconds=1)).isoformat(),
    "error": "checks failed: rows public.stock_levels",
    "checks": [
        {"name": "rows public.items", "expected": 500, "actual": 500, "passed": True},
        {"name": "rows public.stock_levels", "expected": 998, "actual": 990, "passed": False},
    ],
}


def rows(component: html.Div) -> list[list[Any]]:
    """Each body row's cells: text, or the component where a cell is one."""
    table = component.children
    return [[cell.children for cell in row.children] for row in table.children[1].children]


def test_the_archive_table_shows_the_lag_against_the_rpo_and_names_a_failure() -> None:
    (row,) = rows(archive_table([database(archive=ARCHIVE)], now=NOW))
    assert row[1] == "archiving"
    assert row[2].children == "30 s / 5 min ✓"
    assert (row[3], row[4], row[5]) == ("2.0 MB", "000000010000000000000011", "30 s ago")
    failing = {
        **ARCHIVE,
        "failing": True,
        "failure": "[104]: repo1: [FileOpenError] ... Permission denied",
        "last_failed_wal": "000000010000000000000012",
        "last_failed_at": NOW.isoformat(),
        "lag_s": 400.0,
    }
    (row,) = rows(archive_table([database(archive=failing)], now=NOW))
    assert row[1].children == "failing: [104]: repo1: [FileOpenError] ... Permission denied"
    assert row[2].children == "7 min / 5 min ✗"
    unread = {**ARCHIVE, "error": "no writable primary", "lag_s": None, "lag_bytes": None}
    (row,) = rows(archive_table([database(archive=unread)], now=NOW))
    assert row[1].children == "no data: no writable primary"
    assert row[3] == "—"  # unknown, not 0
    empty = archive_table([database()], now=NOW)
    assert empty.children == "WAL archiving is not reported by this control plane"


def test_the_backups_table_lists_each_backup_with_its_size_wal_range_and_result() -> None:
    failed = {
        **BACKUP,
        "id": 8,
        "label": None,
        "type": "diff",
        "requested_type": "diff",
        "finished_at": (NOW - timedelta(minutes=10)).isoformat(),
        "succeeded": False,
        "size_bytes": None,
        "repo_delta_bytes": None,
        "wal_start": None,
        "wal_stop": None,
        "error": "[047]: unable to create path",
    }
    newest, full = rows(backups_table([database(backups=[BACKUP, failed])], now=NOW))
    assert newest[1] == "diff"
    assert newest[8].children == "failed: [047]: unable to create path"
    assert newest[5] == "—"
    assert full[2] == "20261121-010000F"
    assert (full[4], full[5], full[6]) == ("2 min", "1.20 GB", "250.0 MB")
    assert full[7] == "000000010000000000000003 – 000000010000000000000004"
    assert full[8] == "succeeded"
    assert backups_table([database()], now=NOW).children == "no backup on record"


def test_the_restores_table_shows_the_time_to_come_up_against_the_rto_and_the_checks() -> None:
    (row,) = rows(restores_table([database(restore_validations=[RESTORE])]))
    assert row[1] == "point in time"
    assert row[4].children == "17 min / 15 min ✗"
    assert row[6] == "1 of 2 passed (failed: rows public.stock_levels)"
    assert row[7].children == "failed: checks failed: rows public.stock_levels"
    assert restores_table([database()]).children == "no restore validation on record"
