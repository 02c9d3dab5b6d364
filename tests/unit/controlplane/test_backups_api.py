"""The backup routes: backups and restore validations served newest first with what pgBackRest
and the checks said; an operator posts a validation made elsewhere (a viewer may not, bad input
is a 422 naming the field); the DR view carries them, and says why the archive is unread."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.core.security import Role
from controlplane.store.backups import NewBackup, record_backup
from tests.unit.controlplane.conftest import Api

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


def backup(label: str | None, kind: str, at: datetime, *, error: str | None = None) -> NewBackup:
    return NewBackup(
        database="inventory",
        stanza="inventory",
        label=label,
        type=kind,  # type: ignore[arg-type]
        requested_type=kind,  # type: ignore[arg-type]
        started_at=at - timedelta(seconds=40),
        finished_at=at,
        duration_s=40.0,
        succeeded=error is None,
        size_bytes=None if error else 1_073_741_824,
        repo_size_bytes=None if error else 300_000_000,
        wal_start=None if error else "000000010000000000000010",
        wal_stop=None if error else "000000010000000000000012",
        error=error,
    )


RESTORE = {
    "database": "inventory",
    "kind": "point_in_time",
    "run_id": "drill-1",
    "target": "point in time 2026-12-05 02:00:00.000000+00",
    "started_at": "2026-12-05T02:01:00+00:00",
    "finished_at": "2026-12-05T02:02:30+00:00",
    "succeeded": True,
    "backup_set": "20261205-010000F",
    "duration_s": 71.5,
    "reached_at": "2026-12-05T01:59:59.990000+00:00",
    "target_at": "2026-12-05T02:00:00+00:00",
    "checks": [
        {"name": "rows public.stock_levels", "expected": 998, "actual": 998, "passed": True}
    ],
}


def test_backups_are_served_newest_first_with_pgbackrests_description(api: Api) -> None:
    with api.runtime.database.writer() as session:
        record_backup(session, backup=backup("20261205-010000F", "full", AT))
        record_backup(
            session,
            backup=backup(None, "diff", AT + timedelta(hours=1), error="[047]: unable to create"),
        )
    answer = api.client.get("/api/v1/dr/backups", headers=api.headers())
    assert answer.status_code == 200
    failed, full = answer.json()
    assert (failed["type"], failed["succeeded"], failed["error"]) == (
        "diff",
        False,
        "[047]: unable to create",
    )
    assert (full["label"], full["size_bytes"], full["wal_start"], full["wal_stop"]) == (
        "20261205-010000F",
        1_073_741_824,
        "000000010000000000000010",
        "000000010000000000000012",
    )
    (database,) = api.client.get("/api/v1/dr", headers=api.headers()).json()["databases"]
    assert [b["type"] for b in database["backups"]] == ["diff", "full"]
    assert database["archive"]["configured"] is False
    assert "CONTROLPLANE_PGBACKREST_CONFIG" in database["archive"]["error"]
    assert database["archive"]["lag_s"] is None  # unknown, not 0


def test_an_operator_posts_a_restore_validation_and_the_dr_view_shows_it(api: Api) -> None:
    path = "/api/v1/dr/restore-validations"
    refused = api.client.post(path, json=RESTORE, headers=api.headers(Role.VIEWER))
    assert refused.status_code == 403
    broken = api.client.post(
        path, json={**RESTORE, "kind": "yesterday"}, headers=api.headers(Role.OPERATOR)
    )
    assert broken.status_code == 422
    assert ["body", "kind"] in [error["loc"] for error in broken.json()["detail"]]
    stored = api.client.post(path, json=RESTORE, headers=api.headers(Role.OPERATOR))
    assert stored.status_code == 201, stored.text
    (listed,) = api.client.get(path, headers=api.headers()).json()
    assert listed["id"] == stored.json()["id"]
    assert (listed["kind"], listed["duration_s"], listed["checks"][0]["actual"]) == (
        "point_in_time",
        71.5,
        998,
    )
    (database,) = api.client.get("/api/v1/dr", headers=api.headers()).json()["databases"]
    assert database["last_restore_validation"] == "2026-12-05T02:02:30Z"
    assert [r["run_id"] for r in database["restore_validations"]] == ["drill-1"]


@pytest.mark.parametrize("path", ["/api/v1/dr/backups", "/api/v1/dr/restore-validations"])
def test_a_nul_in_the_database_filter_is_a_422_naming_it(api: Api, path: str) -> None:
    answer = api.client.get(path, params={"database": "inv\x00entory"}, headers=api.headers())
    assert answer.status_code == 422
    assert [error["loc"] for error in answer.json()["detail"]] == [["query", "database"]]
