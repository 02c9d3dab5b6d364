from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from controlplane.core.processes import (
    BackendStartError,
    ServerProcess,
    child_pids,
    free_ports,
    group_alive,
    kill_processes_under,
    pid_alive,
    postmaster_pid,
    processes_under,
    read_pidfile,
    require_executable,
    tail,
)

pytestmark = pytest.mark.unit


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_missing_binary_error_names_the_backend_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "redis-server"
    with pytest.raises(BackendStartError) as caught:
        require_executable("redis", missing, "run make bootstrap")
    assert caught.value.backend == "redis"
    assert str(caught.value).startswith("redis: executable not found at")
    assert str(missing) in str(caught.value)


def test_stop_ends_the_whole_process_group_including_grandchildren(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    process = ServerProcess(
        name="sleeper",
        argv=["/bin/sh", "-c", f"sleep 60 & echo $! > {marker}; wait"],
        log_path=tmp_path / "log" / "sleeper.log",
    )
    process.start()
    assert process.pid is not None
    deadline = time.monotonic() + 10
    while not marker.exists() or not marker.read_text().strip():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    grandchild = int(marker.read_text())
    process.stop(timeout=5)
    assert not group_alive(process.pid)
    assert not pid_alive(grandchild)  # gone, or a zombie waiting for init to reap it


def test_exit_code_is_reported_for_a_process_that_dies(tmp_path: Path) -> None:
    process = ServerProcess(
        name="crasher",
        argv=["/bin/sh", "-c", "echo boom; exit 3"],
        log_path=tmp_path / "crasher.log",
    )
    process.start()
    deadline = time.monotonic() + 10
    while process.exit_code() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert process.exit_code() == 3
    assert tail(tmp_path / "crasher.log") == "boom"


def test_tail_returns_the_last_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)), encoding="utf-8")
    assert tail(log, 3) == "line 97\nline 98\nline 99"
    assert tail(tmp_path / "absent.log") == ""


@pytest.mark.parametrize(
    ("content", "pid"),
    [
        ("4242\n/var/lib/postgresql/data\n1733000000\n5432\n", 4242),  # postmaster.pid
        ("4242\n", 4242),  # gunicorn's pidfile
        ("", None),
        ("not a pid\n", None),
    ],
)
def test_a_pidfile_gives_the_pid_on_its_first_line(
    tmp_path: Path, content: str, pid: int | None
) -> None:
    (tmp_path / "postmaster.pid").write_text(content, encoding="utf-8")
    assert read_pidfile(tmp_path / "postmaster.pid") == pid
    assert postmaster_pid(tmp_path) == pid
    assert postmaster_pid(tmp_path / "absent") is None


def test_child_pids_are_the_live_children_only(tmp_path: Path) -> None:
    marker = tmp_path / "children"
    process = ServerProcess(
        name="parent",
        argv=["/bin/sh", "-c", f"sleep 60 & sleep 60 & echo ready > {marker}; wait"],
        log_path=tmp_path / "parent.log",
    )
    process.start()
    assert process.pid is not None
    try:
        deadline = time.monotonic() + 10
        while len(child_pids(process.pid)) < 2:
            assert time.monotonic() < deadline, "the children never started"
            time.sleep(0.05)
        assert all(pid_alive(child) for child in child_pids(process.pid))
    finally:
        process.stop(timeout=5)
    assert child_pids(process.pid) == []


def test_processes_working_in_a_folder_are_found_by_program_and_killed(tmp_path: Path) -> None:
    """What fencing and a stopped PostgreSQL backend use: a server process in its own session
    (as each PostgreSQL child is) is found through its working folder, not its parent."""
    stray = subprocess.Popen(["sleep", "60"], cwd=tmp_path, start_new_session=True)
    try:
        (tmp_path / "inner").mkdir()
        assert stray.pid in processes_under(tmp_path)
        assert stray.pid in processes_under(tmp_path, program="sleep")
        assert processes_under(tmp_path, program="postgres") == {}  # a shell there is no server
        assert processes_under(tmp_path / "inner") == {}
        assert kill_processes_under(tmp_path, program="sleep", timeout=5) == {}
        assert stray.wait(timeout=5) == -9
    finally:
        stray.kill()
        stray.wait()
