"""`controlplane stack up|status|down` on free ports: healthy first, then nothing left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.core.processes import port_is_free
from controlplane.stack.runner import ORDER, shifted_ports

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("controlplane"))


def free_offset() -> int:
    """An offset that moves every demo port onto a currently free port."""
    for _ in range(200):
        offset = random.randrange(10000, 29000)
        ports = [p for labels in shifted_ports(offset).values() for p in labels.values()]
        if all(port_is_free(p) for p in ports):
            return offset
    raise AssertionError("no free block of ports found")


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "stack", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def stack_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="stack-home-"))
    home.chmod(0o755)
    yield home
    cli("down", home=home)
    subprocess.run(["rm", "-rf", str(home)], check=False)


def assert_status_healthy(home: Path, offset: int) -> None:
    status = cli("status", home=home)
    assert status.returncode == 0, status.stdout + status.stderr
    expected = shifted_ports(offset)
    for name in ORDER:
        line = next(line for line in status.stdout.splitlines() if name in line)
        if expected[name]:  # the traffic generator listens nowhere
            main_port = next(iter(expected[name].values()))
            assert f"127.0.0.1:{main_port}" in line, line
        assert "healthy" in line, line
    assert (home / "logs" / "elasticsearch.log").is_file()


def assert_console_reads_the_control_plane(home: Path, offset: int) -> None:
    """The console serves its page on the dashboards port, and its token is an operator token
    of the stack's own control plane."""
    ports = shifted_ports(offset)
    page = httpx.get(f"http://127.0.0.1:{ports['dashboards']['http']}/", timeout=10)
    assert page.status_code == 200
    assert "Inventory SLO console" in page.text
    token = (home / "data" / "controlplane" / "dashboards.token").read_text().strip()
    me = httpx.get(
        f"http://127.0.0.1:{ports['controlplane']['http']}/api/v1/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "operator"


def test_up_status_down_leaves_no_process(stack_home: Path) -> None:
    offset = free_offset()
    up = subprocess.run(
        [CLI, "stack", "up", "--home", str(stack_home), "--port-offset", str(offset)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    assert_status_healthy(stack_home, offset)
    assert_console_reads_the_control_plane(stack_home, offset)
    again = cli("up", home=stack_home)
    assert again.returncode == 1
    assert "already running" in again.stderr

    down = cli("down", home=stack_home)
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_mentioning(str(stack_home)) == []
    stopped = cli("status", home=stack_home)
    assert stopped.returncode == 1
    assert "stopped" in stopped.stdout


def foreground_stack(home: Path, offset: int) -> subprocess.Popen[str]:
    """`make demo`: a foreground stack, returned once every backend is healthy."""
    runner = subprocess.Popen(
        [CLI, "stack", "up", "--foreground", "--home", str(home), "--port-offset", str(offset)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 300
    while cli("status", home=home).returncode != 0:
        if runner.poll() is not None or time.monotonic() > deadline:
            runner.kill()
            output, _ = runner.communicate()
            raise AssertionError(f"stack did not become healthy:\n{output}")
        time.sleep(1)
    return runner


def test_foreground_stack_stops_everything_on_ctrl_c(stack_home: Path) -> None:
    offset = free_offset()
    runner = foreground_stack(stack_home, offset)
    try:
        assert_status_healthy(stack_home, offset)
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, output
    assert "stopping the local stack" in output
    assert processes_mentioning(str(stack_home)) == []


def test_foreground_stack_exits_when_stopped_from_another_terminal(stack_home: Path) -> None:
    """`make demo` in one terminal, `make demo-down` in another: the first one notices, says
    so and exits 0 instead of waiting for a Ctrl-C that has nothing left to stop."""
    runner = foreground_stack(stack_home, free_offset())
    try:
        down = cli("down", home=stack_home)
        assert down.returncode == 0, down.stdout + down.stderr
        output, _ = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, output
    assert "the local stack was stopped from elsewhere" in output
    assert processes_mentioning(str(stack_home)) == []
