"""WAL archiving as the DR check sees it: working, then broken on purpose (the repository's
archive made unwritable for the account pgBackRest runs as) — a finding opens at the first
check after the failure and names pgBackRest's error, and the WAL left behind counts against
the RPO — then repaired, and resolved."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from controlplane.backups.archive import read_archive_status
from tests.integration.backups.conftest import (
    BackedUp,
    ControlPlane,
    ControlPlaneFactory,
    control_plane_settings,
)
from tests.integration.controlplane.evaluation.support import eventually
from tests.unit.controlplane.conftest import running_api, settings_for

pytestmark = pytest.mark.integration

FAILING = "dr.archiving_failing database/inventory/archive"
LAG = "dr.archive_lag database/inventory/archive"


def archive_folders(backed_up: BackedUp) -> list[Path]:
    root = backed_up.repository.repo_path / "archive" / backed_up.repository.stanza
    return sorted(path for path in root.rglob("*") if path.is_dir())


def switch_wal(backed_up: BackedUp) -> None:
    with psycopg.connect(backed_up.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ticks (at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO ticks DEFAULT VALUES")
        conn.execute("SELECT pg_switch_wal()")


@pytest.fixture
def control_plane(control_plane_factory: ControlPlaneFactory) -> ControlPlane:
    """With a 3 s RPO: the WAL held back by a broken archive is soon over it."""
    return control_plane_factory(rpo="3s")


def test_archiving_broken_on_purpose_opens_a_finding_naming_pgbackrests_error(
    backed_up: BackedUp, control_plane: ControlPlane
) -> None:
    switch_wal(backed_up)
    eventually(lambda: read_archive_status(backed_up.dsn()).lag_bytes == 0, timeout=30)
    assert not [key for key in control_plane.open_findings() if "archiv" in key]

    folders = archive_folders(backed_up)
    assert folders
    modes = {folder: folder.stat().st_mode for folder in folders}
    try:
        for folder in folders:
            os.chmod(folder, 0o500)  # read-only for its owner, the account archiving runs as
        switch_wal(backed_up)
        eventually(lambda: read_archive_status(backed_up.dsn()).failing, timeout=30)
        finding = control_plane.open_findings()[FAILING]  # the first check after the failure
        assert finding.severity == "critical"
        error = finding.evidence["error"]
        assert "Permission denied" in error
        assert "[FileOpenError]" in error or "unable to" in error
        assert error in finding.summary
        assert finding.evidence["failed_count"] >= 1
        assert finding.evidence["lag_bytes"] > 0  # the segment that failed waits
        lag = eventually(lambda: control_plane.open_findings().get(LAG), timeout=30)
        assert lag.evidence["lag_s"] > lag.evidence["rpo_s"] == 3
        assert lag.evidence["pending_segments"] >= 1
    finally:
        for folder, mode in modes.items():
            os.chmod(folder, mode)
    switch_wal(backed_up)  # a new segment wakes the archiver, which retries the failed one
    eventually(lambda: not {FAILING, LAG} & set(control_plane.open_findings()), timeout=90)
    status = read_archive_status(backed_up.dsn())
    assert not status.failing
    assert status.pending_segments == 0


def test_the_api_serves_the_archive_of_the_current_primary_against_the_rpo(
    backed_up: BackedUp, tmp_path: Path
) -> None:
    settings = control_plane_settings(tmp_path, backed_up)
    groups = {name: dict(getattr(settings, name)) for name in ("failover", "backups", "policies")}
    with running_api(settings_for(tmp_path / "api", **groups)) as api:
        switch_wal(backed_up)
        eventually(lambda: read_archive_status(backed_up.dsn()).lag_bytes == 0, timeout=30)
        (archive,) = api.client.get("/api/v1/dr/archive", headers=api.headers()).json()
        (database,) = api.client.get("/api/v1/dr", headers=api.headers()).json()["databases"]
    assert archive["error"] is None
    assert (archive["configured"], archive["enabled"], archive["failing"]) == (True, True, False)
    assert archive["rpo_s"] == 300
    assert archive["lag_s"] is not None
    assert archive["lag_s"] < 300
    assert archive["last_archived_wal"] is not None
    assert database["archive"]["current_wal"] == archive["current_wal"]
