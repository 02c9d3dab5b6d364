"""`controlplane drill switchover|failover` on a local stack's PostgreSQL pair (local driver):
the switchover measured and stored; the failover left to the stack's control plane."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.core.config import ControlPlaneSettings, StoreSettings
from controlplane.core.processes import free_ports
from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from controlplane.stack.runner import DEMO_PORTS, ORDER, ControlPlane, LocalStack
from controlplane.stack.settings import StackSettings
from controlplane.store.database import Database
from controlplane.store.drills import StoredDrill, list_drills
from tests.support.backends import TEST_PG_CONF, BackendPool

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("controlplane"))


@pytest.fixture
def stack_home(backend_pool: BackendPool) -> Iterator[Path]:
    """A stack home whose state file records a running PostgreSQL primary + replica."""
    home = Path(tempfile.mkdtemp(prefix="drill-home-", dir=backend_pool.base))
    home.chmod(0o755)
    data = home / "data"
    ports = {
        name: dict(zip(DEMO_PORTS[name], free_ports(len(DEMO_PORTS[name])), strict=True))
        for name in ORDER
    }
    primary = PostgresPrimary(
        settings=backend_pool.settings,
        workdir=data / PostgresPrimary.name,
        ports=ports[PostgresPrimary.name],
        extra_conf=TEST_PG_CONF,
    )
    primary.start()
    replica = PostgresReplica(
        settings=backend_pool.settings,
        workdir=data / PostgresReplica.name,
        ports=ports[PostgresReplica.name],
        primary=primary,
    )
    replica.start()
    assert primary.process is not None
    assert replica.process is not None
    pids = {PostgresPrimary.name: primary.process.pid, PostgresReplica.name: replica.process.pid}
    (home / "state.json").write_text(json.dumps({"pids": pids, "ports": ports}))
    yield home
    for backend in (replica, primary):
        backend.stop()
    subprocess.run(
        [CLI, "stack", "down", "--home", str(home)], capture_output=True, timeout=120, check=False
    )


def drill(kind: str, home: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "drill", kind, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "CONTROLPLANE_DATA_DIR": str(store), "COLUMNS": "200"},
    )


def stored_drills(url: str) -> list[StoredDrill]:
    database = Database.from_url(url)
    try:
        database.migrate()
        with database.reader() as session:
            return list_drills(session, database="inventory")
    finally:
        database.dispose()


def test_a_switchover_drill_is_measured_and_stored_a_failover_needs_the_control_plane(
    stack_home: Path, tmp_path: Path
) -> None:
    done = drill("switchover", stack_home, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"switchover drill: RTO \d+\.\d+ s \(within", done.stdout), done.stdout
    assert "0 of" in done.stdout  # no acknowledged write lost

    # The command never fences: without the stack's control plane there is no failover.
    refused = drill("failover", stack_home, tmp_path)
    assert refused.returncode == 1
    assert "a failover drill needs the stack's control plane" in refused.stderr

    # Stored where the stack's control plane reads it, not in the CLI's own data folder.
    cli_store = ControlPlaneSettings(store=StoreSettings(data_dir=tmp_path)).store
    assert stored_drills(cli_store.sqlalchemy_url) == []
    control_plane = LocalStack.at(settings=StackSettings(), home=stack_home).backends[
        "controlplane"
    ]
    assert isinstance(control_plane, ControlPlane)
    (stored,) = stored_drills(control_plane.database_url)
    assert (stored.kind, stored.lost_acknowledged_writes) == ("switchover", 0)
    assert stored.details["old_primary_following"] is True


def test_drill_without_a_running_stack_says_so(tmp_path: Path) -> None:
    done = drill("switchover", tmp_path, tmp_path)
    assert done.returncode == 1
    assert "not running" in done.stderr
