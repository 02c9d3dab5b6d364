"""`controlplane drill switchover|failover` on a local stack's Patroni cluster, then stored."""

from __future__ import annotations

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
from controlplane.stack.runner import DEMO_PORTS, ORDER, ControlPlane, LocalStack
from controlplane.stack.settings import StackSettings
from controlplane.store.database import Database
from controlplane.store.drills import StoredDrill, list_drills
from tests.support.backends import BackendPool

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("controlplane"))


@pytest.fixture
def stack_home(backend_pool: BackendPool) -> Iterator[Path]:
    """A stack home whose state file records its running Patroni cluster (etcd and two members
    on free ports, member-1 leading): the part of the stack the database drills act on."""
    home = Path(tempfile.mkdtemp(prefix="drill-home-", dir=backend_pool.base))
    home.chmod(0o755)
    ports = {
        name: dict(zip(DEMO_PORTS[name], free_ports(len(DEMO_PORTS[name])), strict=True))
        for name in ORDER
    }
    stack = LocalStack(settings=backend_pool.settings, home=home, ports=ports)
    stack.database.start()
    for backend in stack.database.backends:
        assert backend.process is not None
        assert backend.process.pid is not None
        stack.adopt(backend.name, backend.process.pid)
    yield home
    # The drills restart members from their own process: the state file knows them all.
    subprocess.run(
        [CLI, "stack", "down", "--home", str(home)], capture_output=True, timeout=180, check=False
    )
    stack.database.stop()


def drill(kind: str, home: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "drill", kind, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=400,
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


def roles(home: Path) -> dict[str, str]:
    stack = LocalStack.at(settings=StackSettings(), home=home)
    return {view.member: view.role for view in stack.database_members()}


def test_switchover_then_failover_drills_are_measured_and_stored(
    stack_home: Path, tmp_path: Path
) -> None:
    done = drill("switchover", stack_home, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "switching over member-1 → member-2" in done.stdout
    assert re.search(r"switchover drill: RTO \d+\.\d+ s \(within", done.stdout), done.stdout
    assert "0 of" in done.stdout  # no acknowledged write lost
    assert "member-1 follows member-2" in done.stdout
    assert roles(stack_home) == {"member-1": "sync_standby", "member-2": "leader"}

    failed = drill("failover", stack_home, tmp_path)
    assert failed.returncode == 0, failed.stdout + failed.stderr
    assert "SIGKILL patroni-member-2" in failed.stdout
    assert re.search(r"failover drill: RTO \d+\.\d+ s", failed.stdout), failed.stdout
    # Synchronous replication: every acknowledged write is on the member that took over.
    assert re.search(r", 0 of \d+ acknowledged writes lost", failed.stdout), failed.stdout
    assert "member-1 leads now" in failed.stdout
    assert "member-2 rejoined" in failed.stdout
    assert "the stack's control plane is not running" in failed.stdout
    assert roles(stack_home)["member-1"] == "leader"
    assert roles(stack_home)["member-2"] in {"replica", "sync_standby"}

    # Stored where the stack's control plane reads them, not in the CLI's own data folder.
    cli_store = ControlPlaneSettings(store=StoreSettings(data_dir=tmp_path)).store
    assert stored_drills(cli_store.sqlalchemy_url) == []
    control_plane = LocalStack.at(settings=StackSettings(), home=stack_home).backends[
        "controlplane"
    ]
    assert isinstance(control_plane, ControlPlane)
    drills = stored_drills(control_plane.database_url)
    assert [d.kind for d in drills] == ["failover", "switchover"]
    assert [d.lost_acknowledged_writes for d in drills] == [0, 0]
    assert all(d.succeeded for d in drills)
    assert all(d.measured_rto_s < 60 for d in drills)
    failover = drills[0].details
    assert (failover["killed"], failover["new_leader"]) == ("member-2", "member-1")
    assert failover["rejoined"] is True


def test_drill_without_a_running_stack_says_so(tmp_path: Path) -> None:
    done = drill("switchover", tmp_path, tmp_path)
    assert done.returncode == 1
    assert "not running" in done.stderr
