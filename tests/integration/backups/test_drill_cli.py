"""``controlplane drill restore`` as an operator runs it: with the control plane's settings in
its environment, it validates both restores, prints them against the RTO, stores them where the
stack's control plane reads them, and exits 1 naming what failed when a restore does not pass."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from controlplane.core.config import DEFAULT_DR_POLICY
from controlplane.stack.runner import ControlPlane, LocalStack
from controlplane.stack.settings import StackSettings
from controlplane.store.backups import StoredRestoreRun, list_restore_runs
from controlplane.store.database import Database
from tests.integration.backups.conftest import BackedUp
from tests.support.backends import BackendPool

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("controlplane"))


def drill_restore(
    home: Path, backed_up: BackedUp, **extra: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith("CONTROLPLANE_")
    }
    environ.update(
        {
            "COLUMNS": "200",
            "CONTROLPLANE_PGBACKREST_CONFIG": str(backed_up.repository.config_path),
            "CONTROLPLANE_PGBACKREST_STANZA": backed_up.repository.stanza,
            "CONTROLPLANE_DATABASE_NODES": f"primary=127.0.0.1:{backed_up.primary.port}",
            "CONTROLPLANE_RESTORE_SCRATCH_DIR": str(backed_up.scratch),
            **extra,
        }
    )
    if backed_up.repository.user is not None:
        environ["CONTROLPLANE_PGBACKREST_USER"] = backed_up.repository.user
    return subprocess.run(
        [CLI, "drill", "restore", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=environ,
    )


def stored(home: Path) -> list[StoredRestoreRun]:
    backend = LocalStack.at(settings=StackSettings(), home=home).backends[ControlPlane.name]
    assert isinstance(backend, ControlPlane)
    database = Database.from_url(backend.database_url)
    try:
        with database.reader() as session:
            return list_restore_runs(session, database="inventory")
    finally:
        database.dispose()


def test_drill_restore_validates_prints_and_stores_both_restores(
    backed_up: BackedUp, backend_pool: BackendPool, tmp_path: Path
) -> None:
    home = Path(tempfile.mkdtemp(prefix="restore-home-", dir=backend_pool.base))
    backed_up.pgbackrest.backup("full", timeout=300)
    done = drill_restore(home, backed_up)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restore validation" in done.stdout
    assert "backup: " in done.stdout
    assert "point in time: " in done.stdout
    assert "checks passed" in done.stdout
    runs = stored(home)
    assert sorted(run.kind for run in runs) == ["backup", "point_in_time"]
    assert all(run.succeeded for run in runs)
    assert len({run.run_id for run in runs}) == 1
    assert all(run.run_id.startswith("drill-") for run in runs)
    assert not (backed_up.scratch.parent / "restore-drill").exists()

    # A policy whose invariant cannot hold: the drill says which check failed, and exits 1.
    policy = tmp_path / "dr.yaml"
    policy.write_text(
        DEFAULT_DR_POLICY.read_text(encoding="utf-8").replace(
            "WHERE on_hand < 0", "WHERE on_hand >= 0"
        ),
        encoding="utf-8",
    )
    failed = drill_restore(home, backed_up, CONTROLPLANE_DR_POLICY=str(policy))
    assert failed.returncode == 1
    assert "no negative on-hand: expected 0, got 1000" in failed.stderr
    assert len([run for run in stored(home) if not run.succeeded]) == 2


def test_without_a_pgbackrest_configuration_it_says_what_to_set(
    backend_pool: BackendPool,
) -> None:
    home = Path(tempfile.mkdtemp(prefix="restore-home-", dir=backend_pool.base))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    done = subprocess.run(
        [CLI, "drill", "restore", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environ,
    )
    assert done.returncode == 2
    assert "CONTROLPLANE_PGBACKREST_CONFIG" in done.stderr
