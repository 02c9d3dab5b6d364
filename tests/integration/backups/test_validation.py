"""Restore validation with the real pgBackRest: the newest backup restored to an exact restore
point and a point in time, each started in a scratch server, checked against the source and
removed; the DR check's stale finding resolves once one passed. A validation that cannot pass
(the port taken, too little disk, data that breaks an invariant) is a finding with the
evidence, never "ok", and leaves nothing running."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from controlplane.backups.validation import PROBE_TABLE
from controlplane.core.processes import processes_under
from controlplane.store.audit import list_audit
from controlplane.store.backups import StoredRestoreRun, list_restore_runs
from tests.integration.backups.conftest import BackedUp, ControlPlane, ControlPlaneFactory
from tests.support.backends import backends_required

pytestmark = pytest.mark.integration

STALE = "dr.restore_validation_stale database/inventory"


def restores(control_plane: ControlPlane) -> dict[str, StoredRestoreRun]:
    with control_plane.runtime.database.reader() as session:
        runs = list_restore_runs(session, database="inventory")
    return {run.kind: run for run in reversed(runs)}  # the newest of each kind


def test_a_validation_passes_with_every_check_and_resolves_the_stale_finding(
    backed_up: BackedUp, control_plane: ControlPlane
) -> None:
    found = control_plane.open_findings()
    assert STALE in found
    assert "dr.backup_stale database/inventory/backup/full" in found
    assert control_plane.schedule.run_validation_if_due() is None  # nothing to restore yet
    control_plane.schedule.backup_now("full")
    with psycopg.connect(backed_up.dsn(), autocommit=True) as conn:  # written after the backup
        conn.execute("UPDATE stock_levels SET on_hand = on_hand + 5 WHERE warehouse = 'w1'")
        conn.execute("DELETE FROM stock_levels WHERE sku = 'sku-7'")

    entry = control_plane.schedule.run_validation_if_due()
    assert entry is not None
    assert (entry.action, entry.decision, entry.outcome) == (
        "validate_restore",
        "taken",
        "succeeded",
    ), entry.outcome_detail
    runs = restores(control_plane)
    assert set(runs) == {"backup", "point_in_time"}
    for run in runs.values():
        assert run.succeeded, run.error
        assert run.run_id == entry.decision_id
        checks = {check.name: check for check in run.checks}
        rows = checks["rows public.stock_levels"]
        assert (rows.expected, rows.actual) == (998, 998)  # the delete after the backup replayed
        assert checks[f"checksum {PROBE_TABLE}"].passed
        assert checks["no negative on-hand"].actual == 0
        assert checks["reservations within on-hand"].actual == 0
        assert all(check.passed for check in run.checks)
        assert run.duration_s is not None
        assert run.restore_s is not None
        assert run.reached_at is not None
    pitr = runs["point_in_time"]
    assert pitr.target_at is not None
    assert pitr.reached_at is not None
    assert pitr.reached_at <= pitr.target_at
    assert not backed_up.scratch.exists()

    found = control_plane.open_findings()
    assert STALE not in found
    assert not [key for key in found if key.startswith("dr.restore")]
    assert "dr.backup_stale database/inventory/backup/full" not in found
    # Not due again until the policy's cadence has passed.
    assert control_plane.schedule.run_validation_if_due() is None


def failed_validation(
    control_plane: ControlPlane, backed_up: BackedUp
) -> tuple[dict[str, StoredRestoreRun], dict[str, object]]:
    control_plane.schedule.backup_now("full")
    entry = control_plane.schedule.run_validation_if_due()
    assert entry is not None
    assert entry.outcome == "failed"
    assert not processes_under(backed_up.scratch.parent)
    assert not backed_up.scratch.exists()
    found = control_plane.open_findings()
    return restores(control_plane), found  # type: ignore[return-value]


def test_a_restore_into_a_port_in_use_fails_with_the_reason_and_leaves_nothing_running(
    backed_up: BackedUp, control_plane_factory: ControlPlaneFactory
) -> None:
    control_plane = control_plane_factory(restore_port=backed_up.primary.port)
    runs, found = failed_validation(control_plane, backed_up)
    for run in runs.values():
        assert not run.succeeded
        assert run.error == f"port {backed_up.primary.port} of the scratch server is already in use"
    finding = found["dr.restore_validation_failed database/inventory/restore/backup"]
    assert "already in use" in finding.evidence["error"]  # type: ignore[attr-defined]
    assert STALE in found  # a failed validation is no validation


def test_an_invariant_broken_in_the_restored_data_fails_the_validation_with_the_evidence(
    backed_up: BackedUp, control_plane: ControlPlane
) -> None:
    with psycopg.connect(backed_up.dsn(), autocommit=True) as conn:
        # What the CHECK constraint would refuse, as if it had been lost: the restored copy
        # must show it, whatever the source's constraints say.
        conn.execute("ALTER TABLE stock_levels DROP CONSTRAINT stock_available_not_negative")
        conn.execute("UPDATE stock_levels SET reserved = on_hand + 1 WHERE sku = 'sku-3'")
    runs, found = failed_validation(control_plane, backed_up)
    for run in runs.values():
        broken = [c for c in run.checks if not c.passed]
        assert [(c.name, c.expected, c.actual) for c in broken] == [
            ("reservations within on-hand", 0, 2)
        ]
        assert run.error == "checks failed: reservations within on-hand"
    finding = found["dr.restore_validation_failed database/inventory/restore/point_in_time"]
    assert finding.evidence["failed_checks"] == ["reservations within on-hand"]  # type: ignore[attr-defined]
    with control_plane.runtime.database.reader() as session:
        (audited,) = list_audit(session, action="validate_restore")
    assert audited.outcome == "failed"
    assert "reservations within on-hand" in (audited.outcome_detail or "")


@pytest.fixture
def small_disk(backed_up: BackedUp) -> Iterator[Path]:
    """The scratch folder on a 16 MB filesystem of its own (a tmpfs; needs root)."""
    mount = backed_up.scratch.parent / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = f"cannot mount a small tmpfs: {done.stderr.strip()}"
        if backends_required():
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount / "scratch"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_restore_onto_a_full_disk_fails_with_the_reason_and_leaves_nothing_running(
    backed_up: BackedUp, control_plane_factory: ControlPlaneFactory, small_disk: Path
) -> None:
    control_plane = control_plane_factory(restore_scratch_dir=small_disk)
    control_plane.schedule.backup_now("full")
    entry = control_plane.schedule.run_validation_if_due()
    assert entry is not None
    assert entry.outcome == "failed"
    for run in restores(control_plane).values():
        assert not run.succeeded
        assert run.error is not None
        assert "MB free; the backup needs" in run.error
    assert not small_disk.exists()
    assert not processes_under(small_disk.parent)
    found = control_plane.open_findings()
    assert "dr.restore_validation_failed database/inventory/restore/backup" in found
