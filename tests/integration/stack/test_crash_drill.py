"""`controlplane drill crash` (`make demo-failover`) on a local stack's Patroni cluster: the
member that leads is SIGKILLed under the write probe, the other one takes the writes, the killed
one rejoins as a replica, and the drill is stored where the stack's control plane reads it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.core.config import ControlPlaneSettings, StoreSettings
from controlplane.stack.runner import ControlPlane, LocalStack
from controlplane.stack.settings import StackSettings
from controlplane.store.database import Database
from controlplane.store.drills import StoredDrill, list_drills
from tests.integration.stack.support import stack_on_free_ports
from tests.support.backends import BackendPool

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("controlplane"))


@pytest.fixture
def stack_home(backend_pool: BackendPool) -> Iterator[Path]:
    """A stack home whose state file records its running Patroni cluster (etcd and two members
    on free ports, member-1 leading): the part of the stack the crash drill acts on."""
    stack = stack_on_free_ports(backend_pool, prefix="crash-home-")
    home = stack.home
    stack.database.start()
    for backend in stack.database.backends:
        assert backend.process is not None
        assert backend.process.pid is not None
        stack.adopt(backend.name, backend.process.pid)
    yield home
    # The drill restarts the killed member from its own process: the state file knows it.
    subprocess.run(
        [CLI, "stack", "down", "--home", str(home)], capture_output=True, timeout=180, check=False
    )
    stack.database.stop()


def crash(home: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "drill", "crash", "--home", str(home)],
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


def test_a_crashed_leader_is_replaced_rejoins_and_the_drill_is_stored(
    stack_home: Path, tmp_path: Path
) -> None:
    done = crash(stack_home, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SIGKILL patroni-member-1" in done.stdout
    # Synchronous replication: every acknowledged write is on the member that took over.
    assert re.search(r"failover drill: RTO \d+\.\d+ s \(within", done.stdout), done.stdout
    assert re.search(r", 0 of \d+ acknowledged writes lost", done.stdout), done.stdout
    assert "member-2 leads now" in done.stdout
    assert re.search(r"member-1 rejoined .*: (replica|sync_standby), streaming", done.stdout)
    assert "the stack's control plane is not running: no audited decision" in done.stdout
    stack = LocalStack.at(settings=StackSettings(), home=stack_home)
    roles = {view.member: view.role for view in stack.database_members()}
    assert roles["member-2"] == "leader"
    assert roles["member-1"] in {"replica", "sync_standby"}

    # Stored where the stack's control plane reads it, not in the CLI's own data folder.
    cli_store = ControlPlaneSettings(store=StoreSettings(data_dir=tmp_path)).store
    assert stored_drills(cli_store.sqlalchemy_url) == []
    control_plane = stack.backends["controlplane"]
    assert isinstance(control_plane, ControlPlane)
    (drill,) = stored_drills(control_plane.database_url)
    assert (drill.kind, drill.lost_acknowledged_writes, drill.succeeded) == ("failover", 0, True)
    assert 0 < drill.measured_rto_s < 60
    assert (drill.details["killed"], drill.details["new_leader"]) == ("member-1", "member-2")
    assert drill.details["rejoined"] is True

    # Again, the other way round: the drill follows whichever member leads now.
    again = crash(stack_home, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "SIGKILL patroni-member-2" in again.stdout
    assert "member-1 leads now" in again.stdout


def test_crash_without_a_running_stack_says_so(tmp_path: Path) -> None:
    done = crash(tmp_path, tmp_path)
    assert done.returncode == 1
    assert "not running" in done.stderr
